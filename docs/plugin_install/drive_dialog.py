"""Drive napari's own plugin installer (napari-plugin-manager's QtPluginDialog) in a real
window: install napari-nst by name, open its widget from the Plugins menu without restarting
napari, then uninstall it through the same dialog.

Run by check_plugin_install.sh inside a fresh napari environment under Xvfb, with pip pointed
at a local package index through PIP_INDEX_URL / PIP_EXTRA_INDEX_URL (the dialog runs
``python -m pip install`` in a QProcess that inherits this process's environment).

Every wait below is on a Qt signal (the installer queue's ``allFinished``), on a condition
polled from a QTimer inside a QEventLoop, always with a timeout: no blind sleeps.

Exit status: 0 when every check passed, 1 otherwise. A JSON report is written next to the
screenshots (``--out-dir``).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import sys
import time
import traceback
from pathlib import Path

PKG = "napari-nst"
WIDGET = "Style Transfer"  # display_name in src/napari_nst/napari.yaml
PLUGIN_DISPLAY = "Neural Style Transfer"
MAX_PNG_BYTES = 300_000

checks: list[dict] = []
_ARGS = None
VERSIONS: dict = {}
events: list[str] = []
T0 = time.monotonic()


def log(msg: str) -> None:
    line = f"[{time.monotonic() - T0:7.1f}s] {msg}"
    events.append(line)
    print(line, flush=True)


def dist_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def check(name: str, ok: bool, detail: str = "") -> bool:
    checks.append({"check": name, "ok": bool(ok), "detail": detail})
    log(f"{'PASS' if ok else 'FAIL'}: {name}{' -- ' + detail if detail else ''}")
    return bool(ok)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out-dir", required=True, type=Path)
    ap.add_argument(
        "--expect-url",
        required=True,
        help="the local index's address; pip's log must show the wheel came from it",
    )
    ap.add_argument("--requirement", default=PKG, help="what to type into the dialog")
    ap.add_argument("--install-timeout", type=float, default=1200)
    ap.add_argument("--uninstall-timeout", type=float, default=300)
    args = ap.parse_args()
    global _ARGS
    _ARGS = args
    args.out_dir.mkdir(parents=True, exist_ok=True)

    import napari
    import napari_plugin_manager
    import npe2
    from qtpy.QtCore import QEventLoop, QTimer
    from qtpy.QtWidgets import QApplication, QLabel, QMenu, QPushButton, QWidget

    versions = VERSIONS
    versions |= {
        "python": sys.version.split()[0],
        "napari": napari.__version__,
        "napari-plugin-manager": importlib.metadata.version("napari-plugin-manager"),
        "npe2": npe2.__version__,
        "pip": importlib.metadata.version("pip"),
        "qt_binding": __import__("qtpy").API_NAME,
        "qt": __import__("qtpy").QT_VERSION,
        "torch (before install)": dist_version("torch"),
    }
    log(f"versions: {versions}")
    log(f"napari_plugin_manager from {Path(napari_plugin_manager.__file__).parent}")

    # ---------------------------------------------------------------- helpers
    def wait_until(pred, timeout: float, what: str, interval_ms: int = 100) -> bool:
        """Run the Qt event loop until pred() is true or the timeout passes."""
        if pred():
            return True
        loop = QEventLoop()
        poll = QTimer()
        poll.setInterval(interval_ms)
        poll.timeout.connect(lambda: pred() and loop.quit())
        guard = QTimer()
        guard.setSingleShot(True)
        guard.timeout.connect(loop.quit)
        poll.start()
        guard.start(int(timeout * 1000))
        loop.exec_()
        poll.stop()
        guard.stop()
        ok = bool(pred())
        if not ok:
            log(f"timed out after {timeout:.0f}s waiting for {what}")
        return ok

    def wait_signal(signal, timeout: float, what: str):
        """Run the Qt event loop until `signal` fires; return its arguments or None."""
        got: list = []
        loop = QEventLoop()

        def on_signal(*a):
            got.append(a)
            loop.quit()

        signal.connect(on_signal)
        guard = QTimer()
        guard.setSingleShot(True)
        guard.timeout.connect(loop.quit)
        guard.start(int(timeout * 1000))
        loop.exec_()
        guard.stop()
        signal.disconnect(on_signal)
        if not got:
            log(f"timed out after {timeout:.0f}s waiting for {what}")
            return None
        return got[0]

    def settle(ms: int = 300) -> None:
        """Let pending paint/layout events run (used before grabbing pixels only)."""
        loop = QEventLoop()
        QTimer.singleShot(ms, loop.quit)
        loop.exec_()

    def save_png(img, name: str) -> str:
        """Save a QImage/QPixmap (or numpy RGBA) as a small PNG, shrinking if needed."""
        path = args.out_dir / name
        if hasattr(img, "save"):
            img.save(str(path), "PNG")
        else:
            from PIL import Image

            Image.fromarray(img).save(path)
        if path.stat().st_size > MAX_PNG_BYTES:
            from PIL import Image

            im = Image.open(path).convert("RGB")
            im = im.quantize(colors=128, method=Image.Quantize.MEDIANCUT)
            im.save(path, optimize=True)
        if path.stat().st_size > MAX_PNG_BYTES:
            from PIL import Image

            im = Image.open(path).convert("RGB")
            w, h = im.size
            im = im.resize((w * 3 // 4, h * 3 // 4)).quantize(colors=96)
            im.save(path, optimize=True)
        log(f"screenshot {path} ({path.stat().st_size // 1024} KB)")
        return str(path)

    def grab_screen(name: str) -> str:
        """The whole X screen: shows popups (menus, modal dialogs) as a user sees them."""
        screen = QApplication.primaryScreen()
        return save_png(screen.grabWindow(0), name)

    def menu_entries(menu: QMenu, prefix: str = "") -> list[str]:
        out = []
        for act in menu.actions():
            if act.isSeparator():
                continue
            text = act.text().replace("&&", "\x00").replace("&", "").replace("\x00", "&")
            path = f"{prefix}{text}"
            sub = act.menu()
            if sub is not None:
                sub.aboutToShow.emit()  # app-model menus refresh their state on show
                out.extend(menu_entries(sub, path + " > "))
            else:
                out.append(path + ("" if act.isEnabled() else " [disabled]"))
        return out

    def find_action(menu: QMenu, pred):
        for act in menu.actions():
            sub = act.menu()
            if sub is not None:
                found = find_action(sub, pred)
                if found is not None:
                    return found
            elif pred(act.text()):
                return act
        return None

    def installed_version():
        return dist_version(PKG)

    # ---------------------------------------------------------------- the viewer
    from napari.utils.notifications import notification_manager

    notification_manager.notification_ready.connect(
        lambda n: log(f"napari notification ({n.severity}): {n.message}")
    )
    viewer = napari.Viewer(title="napari-nst plugin install check")
    qwin = viewer.window._qt_window
    qwin.resize(1366, 820)
    qwin.move(0, 0)
    qwin.raise_()
    qwin.activateWindow()
    wait_until(lambda: qwin.isVisible(), 30, "the main window to show")
    plugins_menu = viewer.window.plugins_menu
    pm2 = npe2.PluginManager.instance()

    before = menu_entries(plugins_menu, "Plugins > ")
    log(f"Plugins menu before install: {before}")
    check(
        "napari-nst is not installed in the fresh environment",
        installed_version() is None and PKG not in pm2,
        f"installed={installed_version()}, in npe2={PKG in pm2}",
    )
    check(
        "the Plugins menu has no Style Transfer entry before install",
        not any(WIDGET in e for e in before),
    )

    # ------------------------------------------- open Plugins > Install/Uninstall Plugins...
    def open_dialog():
        act = find_action(
            plugins_menu, lambda t: t.replace("&", "").startswith("Install/Uninstall")
        )
        if act is None:
            return None
        act.trigger()  # the same QAction the menu item is
        dlg = getattr(qwin, "_plugin_dialog", None)
        wait_until(lambda: dlg is not None and dlg.isVisible(), 30, "the plugin dialog")
        return dlg

    def show_status():
        """Open the pip log pane with its button, as a user would. After a reopen the button
        can stay checked while the pane is hidden (hideEvent hides the pane only), so click
        until the pane shows."""
        for _ in range(2):
            if dialog.stdout_text.isVisible():
                return
            dialog.show_status_btn.click()

    dialog = open_dialog()
    if not check(
        "Plugins > Install/Uninstall Plugins... opens napari-plugin-manager's dialog",
        dialog is not None and dialog.isVisible(),
        type(dialog).__module__ + "." + type(dialog).__qualname__ if dialog else "none",
    ):
        return finish(args)
    dialog.move(140, 60)
    # The hub list comes from api.napari.org in a worker thread; offline it fails. Wait for
    # that worker to end (its `finished` signal, polled through the dialog's state) so the
    # screenshot shows the settled dialog, then carry on: we install by name anyway.
    worker = dialog.worker
    if worker is not None:
        wait_until(
            lambda: not dialog.working_indicator.isVisible(), 60, "the hub-list worker to finish"
        )
    log(f"dialog: '{dialog.installed_label.text()}', '{dialog.avail_label.text()}'")

    # ------------------------------------------------------------------ install
    finished_jobs: list[dict] = []
    dialog.installer.processFinished.connect(lambda d: finished_jobs.append(dict(d)))
    show_status()
    dialog.direct_entry_edit.setText(args.requirement)
    settle()
    grab_screen("01_dialog_before_install.png")

    log(f"clicking Install with {args.requirement!r} typed in the direct-entry field")
    t_install = time.monotonic()
    dialog.direct_entry_btn.click()
    res = wait_signal(dialog.installer.allFinished, args.install_timeout, "the install to finish")
    install_s = time.monotonic() - t_install
    pip_log = dialog.stdout_text.toPlainText()
    (args.out_dir / "install_pip_log.txt").write_text(pip_log)
    exit_codes = list(res[0]) if res else None
    log(f"install finished in {install_s:.1f}s, exit codes {exit_codes}, jobs {finished_jobs}")
    start_line = next((ln for ln in pip_log.splitlines() if ln.startswith("Starting ")), "")
    log(f"the dialog ran: {start_line}")
    check(
        "the dialog's pip install finished with exit code 0",
        exit_codes == [0],
        f"{exit_codes} after {install_s:.0f}s",
    )
    got_from = [
        ln.strip()
        for ln in pip_log.splitlines()
        if "napari_nst-" in ln and ("Downloading" in ln or "Processing" in ln)
    ]
    check(
        "pip took napari-nst from the local index",
        bool(got_from) and all(args.expect_url in ln for ln in got_from),
        " | ".join(got_from),
    )
    done_line = next(
        (ln.strip() for ln in pip_log.splitlines() if ln.startswith("Successfully installed")),
        "no 'Successfully installed'",
    )
    log(f"pip: {done_line}")
    importlib.invalidate_caches()
    VERSIONS["torch (after install)"] = dist_version("torch")
    VERSIONS["torchvision (after install)"] = dist_version("torchvision")
    VERSIONS["napari-nst (installed)"] = dist_version(PKG)
    check(
        "napari-nst is installed (importlib.metadata)",
        installed_version() is not None,
        f"version {installed_version()}",
    )
    check(
        "npe2's PluginManager knows napari-nst",
        PKG in pm2,
        f"display_name={pm2.get_manifest(PKG).display_name!r}" if PKG in pm2 else "",
    )
    wait_until(
        lambda: PKG in dialog.installed_list.packages(),
        10,
        "napari-nst in the dialog's installed list",
    )
    check(
        "the dialog lists napari-nst under Installed Plugins",
        PKG in dialog.installed_list.packages(),
        dialog.installed_label.text(),
    )
    settle()
    grab_screen("02_dialog_after_install.png")

    # ---------------------- close the dialog: napari-plugin-manager asks for a restart
    restart_seen: dict = {}

    def catch_modal(png: str):
        w = QApplication.activeModalWidget()
        if w is not None and w is not dialog and w.isVisible():
            restart_seen["class"] = type(w).__name__
            texts = [c.text().strip() for c in w.findChildren(QLabel)]
            restart_seen["text"] = " ".join(t for t in texts if t)
            settle(200)
            grab_screen(png)
            # dismiss it the way a user would, with its own button (no restart)
            btns = w.findChildren(QPushButton)
            (btns[0].click() if btns else w.close())
        elif dialog.isVisible():
            QTimer.singleShot(200, lambda: catch_modal(png))

    QTimer.singleShot(300, lambda: catch_modal("03_restart_warning_after_install.png"))
    dialog.close_btn.click()  # hideEvent runs RestartWarningDialog.exec_() (nested loop)
    wait_until(
        lambda: not dialog.isVisible() and QApplication.activeModalWidget() is None,
        30,
        "the dialog and its restart warning to close",
    )
    log(f"on closing, the dialog showed {restart_seen or 'nothing'}")

    # ----------------------------------------- the widget, without restarting napari
    after = menu_entries(plugins_menu, "Plugins > ")
    log(f"Plugins menu after install: {after}")
    entries = [e for e in after if WIDGET in e]
    check(
        "the Plugins menu shows the Style Transfer entry (no restart)",
        bool(entries),
        "; ".join(entries),
    )
    filt = menu_entries(viewer.window.layers_menu, "Layers > ")
    log(f"Layers menu entries naming Style Transfer: {[e for e in filt if WIDGET in e]}")
    samples = menu_entries(viewer.window.file_menu, "File > ")
    log(f"File menu entries from the plugin: {[e for e in samples if PLUGIN_DISPLAY in e]}")

    # show the menu as a user sees it: Plugins open, the plugin's submenu open
    bar = qwin.menuBar()
    plugins_menu.popup(bar.mapToGlobal(bar.actionGeometry(plugins_menu.menuAction()).bottomLeft()))
    wait_until(plugins_menu.isVisible, 5, "the Plugins menu to open")
    sub_act = next(
        (a for a in plugins_menu.actions() if a.menu() is not None and PLUGIN_DISPLAY in a.text()),
        None,
    )
    if sub_act is not None:
        plugins_menu.setActiveAction(sub_act)
        sub_act.menu().popup(
            plugins_menu.mapToGlobal(plugins_menu.actionGeometry(sub_act).topRight())
        )
        wait_until(sub_act.menu().isVisible, 5, "the plugin submenu to open")
    settle(400)
    grab_screen("04_plugins_menu_after_install.png")
    if sub_act is not None:
        sub_act.menu().hide()
    plugins_menu.hide()
    settle()

    act = find_action(plugins_menu, lambda t: t.replace("&", "").startswith(WIDGET))
    dock_name = None
    if act is not None:
        log(f"triggering Plugins menu action {act.text()!r}")
        t_dock = time.monotonic()
        act.trigger()
        wait_until(
            lambda: any(WIDGET in k for k in viewer.window._wrapped_dock_widgets),
            120,
            "the Style Transfer dock",
        )
        docks = [k for k in viewer.window._wrapped_dock_widgets if WIDGET in k]
        dock_name = docks[0] if docks else None
        log(
            f"dock widgets now: {list(viewer.window._wrapped_dock_widgets)} "
            f"({time.monotonic() - t_dock:.1f}s)"
        )
    check(
        "the Style Transfer dock opens from the Plugins menu",
        dock_name is not None,
        repr(dock_name),
    )
    if dock_name is not None:
        dock = viewer.window._wrapped_dock_widgets[dock_name]
        wait_until(dock.isVisible, 10, "the dock to show")
        settle(300)
        log(
            f"dock {type(dock).__qualname__}: visible={dock.isVisible()}, "
            f"area={qwin.dockWidgetArea(dock)}, size={dock.width()}x{dock.height()}"
        )
        # napari-nst's classes inside the dock: Qt widgets, and magicgui containers
        # (a magicgui widget's .native carries it as _magic_widget)
        found = set()
        for w in [dock.widget(), *dock.findChildren(QWidget)]:
            for obj in (w, getattr(w, "_magic_widget", None)):
                if obj is not None and type(obj).__module__.startswith("napari_nst"):
                    found.add(f"{type(obj).__module__}.{type(obj).__qualname__}")
        check(
            "the dock holds napari-nst's widget",
            any(f.endswith(".StyleTransferWidget") for f in found),
            ", ".join(sorted(found)),
        )
        mod = sys.modules.get("napari_nst")
        log(f"napari_nst imported from {getattr(mod, '__file__', None)}")
    settle(800)
    shot = viewer.screenshot(canvas_only=False, flash=False)
    save_png(shot, "05_viewer_with_style_transfer_dock.png")

    # ----------------------------------------------------------------- uninstall
    dialog = open_dialog()
    check(
        "the dialog opens again from the Plugins menu", dialog is not None and dialog.isVisible()
    )
    if dialog is None:
        return finish(args)
    dialog.move(140, 60)
    wait_until(lambda: PKG in dialog.installed_list.packages(), 30, "napari-nst in the list")
    item = next(
        (
            dialog.installed_list.item(i)
            for i in range(dialog.installed_list.count())
            if dialog.installed_list.item(i).widget.name == PKG
        ),
        None,
    )
    if not check(
        "napari-nst has a row in Installed Plugins with an Uninstall button",
        item is not None and item.widget.action_button.text() == "Uninstall",
        item.widget.action_button.text() if item else "no row",
    ):
        return finish(args)
    dialog.installed_list.scrollToItem(item)
    dialog.packages_search.setText("nst")  # filter the installed list to our row
    show_status()
    settle()
    grab_screen("06_dialog_before_uninstall.png")
    log_len = len(dialog.stdout_text.toPlainText())
    log("clicking the row's Uninstall button")
    t_un = time.monotonic()
    item.widget.action_button.click()
    res = wait_signal(
        dialog.installer.allFinished, args.uninstall_timeout, "the uninstall to finish"
    )
    un_s = time.monotonic() - t_un
    un_log = dialog.stdout_text.toPlainText()[log_len:]
    (args.out_dir / "uninstall_pip_log.txt").write_text(un_log)
    exit_codes = list(res[0]) if res else None
    log(f"uninstall finished in {un_s:.1f}s, exit codes {exit_codes}")
    check(
        "the dialog's pip uninstall finished with exit code 0",
        exit_codes == [0],
        f"{exit_codes} after {un_s:.0f}s",
    )
    importlib.invalidate_caches()
    check("napari-nst is no longer installed (importlib.metadata)", installed_version() is None)
    check("npe2's PluginManager no longer has napari-nst", PKG not in pm2)
    check(
        "the dialog no longer lists napari-nst as installed",
        PKG not in dialog.installed_list.packages(),
        dialog.installed_label.text(),
    )
    settle()
    grab_screen("07_dialog_after_uninstall.png")

    restart_seen.clear()
    QTimer.singleShot(300, lambda: catch_modal("09_restart_warning_after_uninstall.png"))
    dialog.close_btn.click()
    wait_until(
        lambda: not dialog.isVisible() and QApplication.activeModalWidget() is None,
        30,
        "the dialog and its restart warning to close",
    )
    log(f"on closing, the dialog showed {restart_seen or 'nothing'}")

    gone = menu_entries(plugins_menu, "Plugins > ")
    log(f"Plugins menu after uninstall: {gone}")
    check(
        "the Plugins menu no longer has the Style Transfer entry",
        not any(WIDGET in e for e in gone),
        "; ".join(e for e in gone if WIDGET in e),
    )
    if dock_name is not None:
        still = dock_name in viewer.window._wrapped_dock_widgets
        log(
            f"the already open dock after uninstall: "
            f"{'still docked (its code stays loaded in this process)' if still else 'removed'}"
        )
    settle(500)
    shot = viewer.screenshot(canvas_only=False, flash=False)
    save_png(shot, "08_viewer_after_uninstall.png")

    viewer.close()
    return finish(args)


def finish(args) -> int:
    ok = bool(checks) and all(c["ok"] for c in checks)
    report = {"ok": ok, "versions": VERSIONS, "checks": checks, "events": events}
    (args.out_dir / "drive_dialog_report.json").write_text(json.dumps(report, indent=1))
    log(f"{sum(c['ok'] for c in checks)}/{len(checks)} checks passed")
    return 0 if ok else 1


def _excepthook(etype, value, tb):
    """An exception in a Qt slot would abort the process (PyQt5's default); record it."""
    text = "".join(traceback.format_exception(etype, value, tb))
    print(text, file=sys.stderr, flush=True)
    check("no uncaught exception in a Qt callback", False, text.strip().splitlines()[-1])


if __name__ == "__main__":
    sys.excepthook = _excepthook
    try:
        rc = main()
    except Exception:
        traceback.print_exc()
        check("the driver ran to its end", False, traceback.format_exc().strip().splitlines()[-1])
        rc = (finish(_ARGS) if _ARGS else 1) or 2
    sys.stdout.flush()
    sys.exit(rc)
