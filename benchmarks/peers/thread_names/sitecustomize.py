"""Put on a benchmarked server's PYTHONPATH (peers/servers.py, `thread_names_dir`): records
which threads Python starts, so core/thread_cpu.py can tell the batcher's and the server's
Python threads from native compute pools (Python 3.11 does not name its threads for the
kernel). With BENCH_THREAD_NAMES_DIR set, each thread writes `<pid>-<tid>` holding its name
there as it starts; nothing else changes. Python imports the first sitecustomize on its path
only, so a server's own one would be hidden: none of the measured servers has one.
"""

import os
import threading

_DIR = os.environ.get("BENCH_THREAD_NAMES_DIR")

if _DIR:
    _start_inner = threading.Thread._bootstrap_inner  # type: ignore[attr-defined]

    def _bootstrap_inner(self: threading.Thread) -> None:
        try:
            path = os.path.join(_DIR, f"{os.getpid()}-{threading.get_native_id()}")
            with open(path, "w") as out:
                out.write(self.name)
        except OSError:
            pass
        _start_inner(self)

    threading.Thread._bootstrap_inner = _bootstrap_inner  # type: ignore[attr-defined]
