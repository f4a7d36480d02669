# Copyright (c) hidiff_mm contributors. All rights reserved.
"""A web page to try a HI-Diff model: drop a photo, get it deblurred beside it.

Usage::

    python tools/web_demo.py [--config CONFIG --checkpoint CKPT] [--device cuda] \
        [--port 7860] [--host 127.0.0.1] [--tile 512 --overlap 32]

then open http://127.0.0.1:7860 in a browser. Without ``--config`` the shipped demo model
runs. The page shows the input and the result side by side, a before/after slider, the time
taken and a download link; images with a side larger than ``--tile`` are tiled, with the
progress shown. It is Python's ``http.server`` and one HTML page (no web framework to install);
listen on another host than 127.0.0.1 only on a network you trust. See docs/deployment.md.
"""
import argparse
import os.path as osp
import sys
from typing import List, Optional

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from quiet import quiet_imports  # noqa: E402  (tools/quiet.py; tools/ is sys.path[0])

quiet_imports()  # before hidiff_mm: hides the toolbox's known import noise (--debug shows it)

import hidiff_mm  # noqa: E402,F401  (applies the compatibility layer first)
from hidiff_mm.apis import init_model  # noqa: E402
from hidiff_mm.apis.demo_model import DEMO_CONFIG, DEMO_WEIGHTS  # noqa: E402
from hidiff_mm.deployment.web_server import DeblurService, make_server  # noqa: E402
from hidiff_mm.utils.cli import run  # noqa: E402
from hidiff_mm.utils.errors import InputError  # noqa: E402


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--config', default=None, help='model config (default: the demo model)')
    parser.add_argument('--checkpoint', default=None,
                        help='checkpoint (default: the demo model\'s with the demo config)')
    parser.add_argument('--device', default='cpu', help="e.g. 'cpu', 'cuda', 'cuda:1'")
    parser.add_argument('--host', default='127.0.0.1', help='address to listen on')
    parser.add_argument('--port', type=int, default=7860, help='port (0: any free one)')
    parser.add_argument('--tile', type=int, default=512,
                        help='tile images with a side larger than this (multiple of 8; '
                        '0: never tile)')
    parser.add_argument('--overlap', type=int, default=32, help='tile overlap in pixels')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    if args.checkpoint and not args.config:
        raise InputError('--checkpoint needs the --config it was trained with')
    config = args.config or DEMO_CONFIG
    checkpoint = args.checkpoint if args.config else DEMO_WEIGHTS
    model = init_model(config, checkpoint, args.device)
    service = DeblurService(model, tile=args.tile or None, overlap=args.overlap)
    server = make_server(service, args.host, args.port)
    host, port = server.server_address[:2]
    print(f'HI-Diff web demo: {osp.basename(config)} on {args.device}; open '
          f'http://{host}:{port} (Ctrl-C stops)', flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == '__main__':
    run(main)
