"""The job server: other programs (scripts, GIMP or Krita plug-ins, the widget) send
stylisation jobs over HTTP (or JSON lines on stdin) and follow them.

* ``security``: who may call, from where, with how much; files confined to the data folder;
* ``jobs``: the job store on disk (atomic, resumable) and the FIFO queue of each device;
* ``runner``: the thread per device that drives each job through the engine;
* ``events``: progress from the runners to WebSocket subscribers;
* ``service``: submission, validation, cancellation (no HTTP);
* ``app``: the FastAPI routes; ``serve``: ``napari-nst serve`` on uvicorn;
* ``stdio``: ``napari-nst serve --stdio``;
* ``client``: the other side: a run on a server as a ``core.step.Run`` (the dock's
  *run on*), over urllib and a WebSocket.

No napari or Qt imports. FastAPI is imported only by ``app`` and ``serve``; the client
needs only the ``websockets`` package.
"""
