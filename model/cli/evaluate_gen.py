"""The command line of :mod:`model.evaluation.evaluate_gen`: Judge a class-conditional generator's samples.

python -m model.cli.evaluate_gen --help
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from model.evaluation.evaluate_gen import (
    bar_checks,
    default_per_class,
    format_table,
    load_samples,
)
from model.evaluation.judge import (
    REFERENCE_ROWS,
    JudgeLoadError,
    build_reference,
    evaluate_samples,
    load_judge,
    reference_rows,
)
from model.training.fashion import is_fashion_folder


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m model.cli.evaluate_gen SAMPLES.npz --data DIR --judge DIR [--out DIR]``: print the table and the bar."""
    p = argparse.ArgumentParser(prog="python -m model.cli.evaluate_gen", description=__doc__.splitlines()[0])
    p.add_argument("samples", help="npz with 'images' uint8 (N, 28|32, 28|32[, 1]) and 'labels' int (N,) in 0..9")
    p.add_argument("--data", default="data/fashion", help="Fashion-MNIST folder (default data/fashion)")
    p.add_argument(
        "--judge", default="checkpoints/fashion-judge", help="judge folder (default checkpoints/fashion-judge)"
    )
    p.add_argument("--out", default=None, help="folder to write eval.json into")
    p.add_argument("--per-class", type=int, default=None, help="reference images per class (default: as in samples)")
    p.add_argument("--seed", type=int, default=0, help="seed of the reference rows' draw and noise (default 0)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    try:
        if args.threads:
            import torch

            torch.set_num_threads(max(1, args.threads))
        images, labels = load_samples(Path(args.samples))
        if not is_fashion_folder(Path(args.data)):
            raise ValueError(
                f"{args.data} holds no Fashion-MNIST IDX files (build it: python -m model.cli.data --fashion-out DIR)"
            )
        per_class, per_class_note = default_per_class(labels)
        if args.per_class is not None:
            per_class, per_class_note = args.per_class, f"{args.per_class} per class (--per-class)"
        judge = load_judge(Path(args.judge))
        ref = build_reference(judge, Path(args.data), per_class, args.seed)
    except (OSError, ValueError, JudgeLoadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    model = evaluate_samples(images, labels, judge, reference=ref)
    rows = reference_rows(judge, reference=ref)
    seconds = time.perf_counter() - t0
    names = {"model": f"model ({Path(args.samples).name})", **REFERENCE_ROWS}
    names["real"] = f"real test images (test[:{ref.half}])"
    table_rows = {"model": model, **rows}
    bar = bar_checks(model, rows)
    acc = judge.meta.get("test_accuracy")
    acc_s = f"{acc * 100:.2f} %" if isinstance(acc, float) else "unknown"
    print(f"samples: {args.samples}: {len(images)} images; judge: {args.judge} (test accuracy {acc_s})")
    print(f"references: {ref.notes['references']} ({per_class_note})")
    print()
    print(format_table(table_rows, names))
    print()
    print(
        f"- judge agreement: share of images the judge classifies as the class asked for (judge test accuracy {acc_s})"
    )
    print(f"- FID: {ref.notes['fid']}; it grows as n shrinks, so compare rows of equal n")
    print(f"- diversity / real: {ref.notes['diversity']}")
    print(f"- near-copies: {ref.notes['near_copy']}")
    print(
        f"- references: '{REFERENCE_ROWS['blur']}': separable Gaussian, radius 2 px, edges replicated; "
        "'½ real + ½ uniform noise': 0.5·real + 0.5·u, u ~ U[0, 255] per pixel, rounded, clipped to 0..255; "
        "'uniform noise': u ~ uniform integers 0..255"
    )
    print()
    print("bar:")
    for c in bar:
        print(f"- {'PASS' if c['pass'] else 'FAIL'}  {c['check']}: {c['shown']}")
    verdict = "PASS" if all(c["pass"] for c in bar) else "FAIL"
    print(f"bar: {verdict} ({sum(c['pass'] for c in bar)}/{len(bar)})")
    print(f"evaluated in {seconds:.1f} s")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        report = {
            "samples": str(args.samples),
            "judge": str(args.judge),
            "judge_test_accuracy": acc,
            "data": str(args.data),
            "per_class": per_class,
            "seed": args.seed,
            "rows": table_rows,
            "row_names": names,
            "bar": bar,
            "bar_pass": verdict == "PASS",
            "definitions": ref.notes,
            "near_copy_threshold": ref.threshold,
            "seconds": seconds,
        }
        (out / "eval.json").write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {out / 'eval.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
