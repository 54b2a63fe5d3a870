"""A local GCS emulator for gs:// workdir tests (gcp-storage-emulator).

One in-memory emulator per test session, in a child process on a free
port; `environ` gives
the variables that point gcsfs (and so `etils.epath`), tensorstore (orbax's
checkpoints) and google-cloud-storage at it; each test gets a bucket of its
own (`new_bucket`).
"""

import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid

_server = None
_port = None
_log_path = None


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


# The emulator runs in a child process: its HTTP server answers one request
# at a time, and in the test's own process it would compete for the GIL
# with compiles and training. The listen backlog is raised from
# socketserver's 5 so that tensorstore's concurrent connections queue
# instead of being reset. Media downloads get the `x-goog-generation`
# header that Cloud Storage sends and the emulator omits: tensorstore
# (orbax's OCDBT checkpoints) reads an object's generation from it and
# otherwise fails with "Malformed StorageGeneration" when it revalidates a
# cached manifest (about one fine-tuning run in ten).
_CHILD = """
import logging, sys
from http import server as http_server
http_server.HTTPServer.request_queue_size = 256
from gcp_storage_emulator.handlers import objects
_download = objects.download
def download(request, response, storage, *args, **kwargs):
  _download(request, response, storage, *args, **kwargs)
  try:
    obj = storage.get_file_obj(request.params["bucket_name"],
                               request.params["object_id"])
  except Exception:  # Not found: the 404 stays as it is.
    return
  response["x-goog-generation"] = str(obj["generation"])
  response["x-goog-metageneration"] = str(obj["metageneration"])
objects.download = download  # Before the server module binds its routes.
from gcp_storage_emulator import server
logging.getLogger("gcp_storage_emulator").setLevel(logging.CRITICAL)
logging.getLogger().setLevel(logging.CRITICAL)
s = server.create_server("localhost", int(sys.argv[1]), in_memory=True,
                         default_bucket="bkt")
s.run()
"""


def start() -> int:
  """Starts the session's emulator (once); returns its port.

  Raises:
    ImportError: gcp-storage-emulator or gcsfs is not installed.
    RuntimeError: the emulator did not start.
  """
  global _server, _port, _log_path
  import gcsfs  # pylint: disable=g-import-not-at-top,unused-import
  import gcp_storage_emulator  # pylint: disable=g-import-not-at-top,unused-import
  if _server is None:
    port = _free_port()
    # Its output goes to a file: a pipe nobody reads would fill up with
    # the tracebacks of clients' hang-ups and stall the server.
    log = tempfile.NamedTemporaryFile(prefix="gcs-emulator-", suffix=".log",
                                      delete=False)
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(port)],
                            stdout=log, stderr=subprocess.STDOUT)
    log.close()
    deadline = time.time() + 60
    while True:
      if proc.poll() is not None:
        raise RuntimeError("the GCS emulator exited; its log: " + log.name)
      try:
        socket.create_connection(("localhost", port), timeout=1).close()
        break
      except OSError:
        if time.time() > deadline:
          proc.kill()
          raise RuntimeError("the GCS emulator did not listen within 60 s")
        time.sleep(0.1)
    _server, _port, _log_path = proc, port, log.name
  return _port


def environ(port: int) -> dict[str, str]:
  url = f"http://localhost:{port}"
  return {
      "STORAGE_EMULATOR_HOST": url,  # gcsfs, google-cloud-storage
      # Else gcsfs 2026.x spends 60 s per call on a gRPC bucket-type lookup.
      "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
      "TENSORSTORE_GCS_HTTP_URL": url,  # orbax's checkpoints
      "GOOGLE_AUTH_TOKEN_FOR_TESTING": "x",
      "GOOGLE_CLOUD_PROJECT": "test",
  }


def new_bucket() -> str:
  """Creates an empty bucket; returns its name."""
  import gcsfs  # pylint: disable=g-import-not-at-top
  name = f"bkt-{uuid.uuid4().hex[:10]}"
  # A fresh instance: gcsfs caches one per arguments, made with the
  # environment of its time.
  gcsfs.GCSFileSystem.clear_instance_cache()
  gcsfs.GCSFileSystem().mkdir(name)
  return name


def stop():
  global _server
  if _server is not None:
    _server.terminate()
    try:
      _server.wait(timeout=10)
    except subprocess.TimeoutExpired:
      _server.kill()
    _server = None
    os.unlink(_log_path)
