# Copyright (c) hidiff_mm contributors. All rights reserved.
"""The web demo's server: Python's ``http.server`` and one static page, no web framework.

``POST /api/jobs?seed=S&name=N`` takes the raw bytes of an image file, decodes it at once (a
file that is not an image is refused with a one-line message, HTTP 400) and starts a job;
``GET /api/jobs/<id>`` reports its state and progress as JSON; ``GET /api/jobs/<id>/input.png``
and ``.../result.png`` return the decoded input and the result (lossless PNG). One prediction
runs at a time (the model is shared); later jobs wait in order. A job is
``hidiff_mm.apis.deblur(model, image, seed, tile, overlap)``: the page's result is the API's.
Images larger than ``tile`` on a side are tiled; the progress counts the Transformer's runs
(one per tile, after the prior is sampled). See docs/deployment.md.
"""
import itertools
import json
import os.path as osp
import threading
import time
import traceback
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, Optional
from urllib.parse import parse_qs, urlparse

import cv2
import numpy as np
import torch

from ..apis.inference import deblur, to_bgr_uint8
from ..models.editors.tiling import tile_grid

PAGE = osp.join(osp.dirname(osp.abspath(__file__)), 'web_demo.html')
MAX_UPLOAD_BYTES = 64 * 2**20
MAX_JOBS = 16  # finished jobs kept (their images are in memory); older ones are dropped


class BadImage(ValueError):
    """An upload that is not an image the demo can deblur (message shown on the page)."""


def decode_upload(data: bytes, name: str) -> np.ndarray:
    """The uploaded file's bytes -> BGR uint8 (H, W, 3), as ``hidiff_mm.apis.read_image``
    decodes a file; :class:`BadImage` with a one-line reason otherwise."""
    if not data:
        raise BadImage(f'{name}: the file is empty')
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise BadImage(f'{name}: not an image OpenCV can decode (PNG, JPEG, BMP, TIFF, WebP, '
                       'PPM/PGM); is the file truncated or something else?')
    try:
        return to_bgr_uint8(img, name=name)
    except (TypeError, ValueError) as err:
        raise BadImage(str(err)) from None


def encode_png(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode('.png', img)
    if not ok:
        raise RuntimeError('PNG encoding failed')
    return buf.tobytes()


@dataclass
class Job:
    """One upload: its state (``queued``, ``running``, ``done``, ``error``) and images."""

    image: np.ndarray
    seed: int
    name: str
    state: str = 'queued'
    done: int = 0
    total: int = 1
    seconds: Optional[float] = None
    error: Optional[str] = None
    tiled: bool = False
    input_png: bytes = b''
    result_png: Optional[bytes] = None
    created: float = field(default_factory=time.time)

    def status(self) -> dict:
        h, w = self.image.shape[:2]
        return dict(state=self.state, done=self.done, total=self.total, seconds=self.seconds,
                    error=self.error, tiled=self.tiled, width=w, height=h, seed=self.seed,
                    name=self.name)


class DeblurService:
    """Runs the jobs of the web demo on one model, one at a time.

    Args:
        model: a HI-Diff editor from ``init_model`` (any device).
        tile: images with a side larger than this are predicted in ``tile x tile`` tiles
            (a multiple of 8); None: never tiled.
        overlap: tile overlap in pixels.
    """

    def __init__(self, model: torch.nn.Module, tile: Optional[int] = 512,
                 overlap: int = 32) -> None:
        if tile is not None:
            model.prediction_options(tile=tile, tile_overlap=overlap)  # fails here, named
        self.model, self.tile, self.overlap = model, tile, overlap
        self.jobs: Dict[str, Job] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()  # one prediction at a time
        self._running: Optional[Job] = None
        model.generator.register_forward_hook(self._count_tile)

    def _count_tile(self, *_) -> None:
        if self._running is not None:
            self._running.done += 1

    def submit(self, data: bytes, seed: int, name: str) -> str:
        """Decode the upload (``BadImage`` if it is not an image) and start its job."""
        job = Job(image=decode_upload(data, name), seed=seed, name=name)
        job.input_png = encode_png(job.image)
        h, w = job.image.shape[:2]
        job.tiled = self.tile is not None and max(h, w) > self.tile
        if job.tiled:
            multiple = self.model.pad_multiple
            job.total = len(tile_grid(-(-h // multiple) * multiple, -(-w // multiple) * multiple,
                                      self.tile, self.overlap))
        job_id = str(next(self._ids))
        self.jobs[job_id] = job
        for old in list(self.jobs)[:-MAX_JOBS]:
            if self.jobs[old].state in ('done', 'error'):
                del self.jobs[old]
        threading.Thread(target=self._run, args=(job, ), daemon=True).start()
        return job_id

    def _run(self, job: Job) -> None:
        with self._lock:
            job.state, self._running = 'running', job
            start = time.perf_counter()
            try:
                out = deblur(self.model, job.image, seed=job.seed,
                             tile=self.tile if job.tiled else None,
                             overlap=self.overlap if job.tiled else None)
                job.result_png = encode_png(out)
                job.seconds = time.perf_counter() - start
                job.state = 'done'
            except Exception as err:  # shown on the page; the traceback goes to the log
                traceback.print_exc()
                job.error, job.state = f'prediction failed: {type(err).__name__}: {err}', 'error'
            finally:
                self._running = None


class Handler(BaseHTTPRequestHandler):
    """The page and the JSON API over a :class:`DeblurService` (``server.service``)."""

    server_version = 'hidiff-web-demo'

    def log_message(self, fmt: str, *args) -> None:
        if not self.server.quiet:
            super().log_message(fmt, *args)

    def _send(self, code: int, body: bytes, ctype: str, extra: Optional[dict] = None) -> None:
        self.send_response(code)
        self.send_header('Content-Type', ctype)
        self.send_header('Content-Length', str(len(body)))
        self.send_header('Cache-Control', 'no-store')
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, code: int, obj: dict) -> None:
        self._send(code, json.dumps(obj).encode(), 'application/json')

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        path = urlparse(self.path).path
        if path in ('/', '/index.html'):
            with open(PAGE, 'rb') as f:
                return self._send(200, f.read(), 'text/html; charset=utf-8')
        parts = path.strip('/').split('/')
        job = self.server.service.jobs.get(parts[2]) if len(parts) >= 3 else None
        if parts[:2] != ['api', 'jobs'] or job is None:
            return self._json(404, dict(error=f'not found: {path}'))
        if len(parts) == 3:
            return self._json(200, job.status())
        if parts[3:] == ['input.png']:
            return self._send(200, job.input_png, 'image/png')
        if parts[3:] == ['result.png'] and job.result_png is not None:
            return self._send(200, job.result_png, 'image/png')
        return self._json(404, dict(error=f'not found: {path}'))

    def do_POST(self) -> None:  # noqa: N802
        url = urlparse(self.path)
        if url.path != '/api/jobs':
            return self._json(404, dict(error=f'not found: {url.path}'))
        query = parse_qs(url.query)
        name = query.get('name', ['upload'])[0][:200]
        try:
            seed = int(query.get('seed', ['100'])[0])
        except ValueError:
            return self._json(400, dict(error='the seed must be an integer'))
        length = int(self.headers.get('Content-Length') or 0)
        if length > MAX_UPLOAD_BYTES:
            return self._json(413, dict(error=f'{name}: the file is {length / 2**20:.0f} MiB; '
                                        f'the limit is {MAX_UPLOAD_BYTES // 2**20} MiB'))
        data = self.rfile.read(length)
        try:
            job_id = self.server.service.submit(data, seed, name)
        except BadImage as err:
            return self._json(400, dict(error=str(err)))
        return self._json(202, dict(id=job_id))


def make_server(service: DeblurService, host: str = '127.0.0.1', port: int = 7860,
                quiet: bool = False) -> ThreadingHTTPServer:
    """An HTTP server for ``service`` (not started: call ``serve_forever``); port 0 picks a free
    one (``server.server_address``)."""
    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    server.service, server.quiet = service, quiet
    return server
