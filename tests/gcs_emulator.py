"""A local GCS emulator for gs:// workdir tests (gcp-storage-emulator).

One in-memory emulator per test session, on a free port; `environ` gives
the variables that point gcsfs (and so `etils.epath`), tensorstore (orbax's
checkpoints) and google-cloud-storage at it; each test gets a bucket of its
own (`new_bucket`).
"""

import logging
import socket
import uuid

_server = None
_port = None


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def start() -> int:
  """Starts the session's emulator (once); returns its port.

  Raises:
    ImportError: gcp-storage-emulator or gcsfs is not installed.
  """
  global _server, _port
  import gcsfs  # pylint: disable=g-import-not-at-top,unused-import
  from gcp_storage_emulator import server  # pylint: disable=g-import-not-at-top
  if _server is None:
    # The emulator logs every missing object at ERROR (orbax probes for
    # several) and every client hang-up with a traceback.
    logging.getLogger("gcp_storage_emulator").setLevel(logging.CRITICAL)
    port = _free_port()
    _server = server.create_server("localhost", port, in_memory=True,
                                   default_bucket="bkt")
    _server.start()
    _port = port
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
    _server.stop()
    _server = None
