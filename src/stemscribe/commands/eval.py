"""``stemscribe eval separation|transcription DATASET``: score models against ground truth.

Writes ``<task>.json`` (every number, with the conventions used), ``<task>.md`` (tables) and PNG
plots into ``--out`` and prints the Markdown tables.
"""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "eval",
        help="score separation or transcription on a dataset with ground truth",
        description="Score a separation model (SDR, whole clip and museval v4) or the transcribers "
        "(mir_eval note F1; drum onset F1 per class) on DATASET: a folder of song folders holding "
        "mixture + drums/bass/other/vocals (wav or flac) and optional <stem>.mid, or a folder of "
        "MUSDB-style .stem.mp4 files.",
    )
    tasks = p.add_subparsers(dest="task", metavar="TASK", required=True)
    for name, help_text in (
        ("separation", "separate each mixture and score the stems (SDR)"),
        ("transcription", "transcribe stems and score notes against <stem>.mid"),
    ):
        t = tasks.add_parser(name, help=help_text, description=help_text)
        t.add_argument("dataset", metavar="DATASET", help="dataset folder")
        t.add_argument("--model", "-m", default=None, help="separation model (see `stemscribe models`)")
        t.add_argument("--model-dir", default=None, metavar="DIR", help="folder with model weights")
        t.add_argument("--out", "-o", default="eval_results", metavar="DIR",
                       help="folder for the JSON, Markdown and PNG results (default: ./eval_results)")
        t.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N songs")
        t.add_argument("--quiet", "-q", action="store_true", help="no progress bar, no table on stdout")
        if name == "transcription":
            t.add_argument("--source", choices=("true", "separated", "both"), default="true",
                           help="transcribe the reference stems, the separated stems, or both (default: true)")
    return p


def run(args: argparse.Namespace) -> int:
    from .. import evaluate
    from ..errors import BadArgumentError
    from ._progress import StageBars

    if args.limit is not None and args.limit < 1:
        raise BadArgumentError("--limit must be at least 1")
    bars = StageBars(enabled=None if not args.quiet else False)
    try:
        if args.task == "separation":
            results = evaluate.evaluate_separation(
                args.dataset, model=args.model, model_dir=args.model_dir, limit=args.limit, progress=bars
            )
        else:
            results = evaluate.evaluate_transcription(
                args.dataset, source=args.source, model=args.model, model_dir=args.model_dir,
                limit=args.limit, progress=bars,
            )
    finally:
        bars.close()
    paths = evaluate.write_results(results, args.out)
    if not args.quiet:
        print(evaluate.results_markdown(results))
    print("wrote " + ", ".join(str(p) for p in paths.values()), file=sys.stderr)
    return 0
