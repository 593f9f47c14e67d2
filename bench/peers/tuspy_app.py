"""tuspyserver's FastAPI router as an ASGI app; uploads go to ``$TUSPY_FILES_DIR/<uid>``.

Served by the benchmark with ``uvicorn tuspy_app:app`` or ``granian --interface asgi``.
"""

from __future__ import annotations

import os

from fastapi import FastAPI
from tuspyserver import create_tus_router

app = FastAPI()
app.include_router(create_tus_router(prefix="files", files_dir=os.environ["TUSPY_FILES_DIR"]))
