# Copyright (c) hidiff_mm contributors. All rights reserved.
"""``torchrun`` with a one-line failure report, for tools/dist_train.sh and tools/dist_test.sh.

Takes exactly ``torchrun``'s arguments and runs ``torch.distributed.run``. When a process fails,
``torchrun`` stops the others (so a killed rank never leaves the rest hanging) and then prints
its own Python traceback and a ``ChildFailedError`` table after the ranks' errors. This launcher
prints one line instead, naming the first process that failed and how, and exits with that
process's exit status (128 + N for a process killed by signal N). Each rank's own error
(``tools/train.py`` and ``tools/test.py`` print one line) is above it.

It imports only torch, not hidiff_mm (the ranks do), so it starts in a second.
"""
import logging
import os.path as osp
import signal
import sys
from typing import List, Optional

from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
from torch.distributed.run import get_args_parser, run


def main(argv: Optional[List[str]] = None) -> int:
    args = get_args_parser().parse_args(argv)
    # torchrun's own error log repeats what the line below says
    logging.getLogger('torch.distributed.elastic').setLevel(logging.CRITICAL)
    try:
        run(args)
    except ChildFailedError as err:
        rank, failure = err.get_first_failure()
        if failure.exitcode < 0:
            how = f'was killed by {signal.Signals(-failure.exitcode).name}'
            code = 128 - failure.exitcode
        else:
            how = f'exited with status {failure.exitcode}'
            code = failure.exitcode
        others = len(err.failures) - 1
        print(f'{osp.basename(args.training_script)}: rank {rank} {how} (its error, if any, is '
              f'above); {others} other process(es) failed or were stopped', file=sys.stderr,
              flush=True)
        return code
    return 0


if __name__ == '__main__':
    sys.exit(main())
