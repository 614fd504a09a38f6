"""``pitchside export``: a ``.pt`` checkpoint to the ONNX the workers serve, optionally INT8.

The fp32 export has dynamic batch, height and width and the class names in its metadata
(:func:`training.train.export_onnx`). With ``--int8`` it is also quantized with ONNX Runtime
from calibration images (:func:`training.quantize.quantize_int8`). An INT8 model is a
candidate like any other: ``--evaluate DATA_YAML`` scores every model produced through the
serving engine on a held-out split and prints them side by side, so the accuracy an INT8
model gives up for its speed is known before it serves.

Examples::

    pitchside export best.pt --imgsz 640 --out exports/
    pitchside export best.pt --int8 --calib data/football/data.yaml --calib-split train \\
        --evaluate data/football/data.yaml --split test
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pitchside.errors import DatasetError, ModelError, SettingsError
from pitchside.settings import Settings, imgsz_arg

if TYPE_CHECKING:
    from training.evaluate import EvalResult

SPLITS = ("train", "val", "test")
YAML_SUFFIXES = (".yaml", ".yml")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("weights", type=Path, help="Ultralytics YOLO detection checkpoint (.pt)")
    parser.add_argument(
        "--imgsz",
        type=imgsz_arg,
        default=640,
        help="long side of the network input the workers will use (export, calibration and "
        "evaluation size; a multiple of 32)",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="folder for the .onnx files (default: the .pt's)"
    )
    int8 = parser.add_argument_group("INT8 quantization")
    int8.add_argument(
        "--int8", action="store_true", help="also write NAME_int8.onnx, quantized with ONNX Runtime"
    )
    int8.add_argument(
        "--calib",
        type=Path,
        default=None,
        metavar="DIR_OR_DATA_YAML",
        help="calibration images: a folder of images, or a data.yaml (see --calib-split); "
        "use frames like those the model will serve",
    )
    int8.add_argument("--calib-split", default="train", choices=SPLITS)
    int8.add_argument(
        "--calib-max",
        type=int,
        default=64,
        help="calibrate on at most this many images, spread over the set (default 64)",
    )
    evaluation = parser.add_argument_group("evaluation")
    evaluation.add_argument(
        "--evaluate",
        type=Path,
        default=None,
        metavar="DATA_YAML",
        help="score each model produced on a split of this data set, through the serving engine",
    )
    evaluation.add_argument("--split", default="test", choices=SPLITS)
    evaluation.add_argument("--json", type=Path, default=None, help="write a summary here (JSON)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from training import dataset
    from training.evaluate import evaluate, format_table
    from training.options import check_output_file
    from training.quantize import quantize_int8, select_images

    # Everything a user can get wrong is checked before the minutes of export and calibration.
    weights: Path = args.weights
    if not weights.is_file():
        raise ModelError(f"no checkpoint at {weights}")
    if weights.suffix != ".pt":
        raise ModelError(f"{weights} is not an Ultralytics checkpoint (.pt)")
    if args.calib is not None and not args.int8:
        raise SettingsError("--calib is only used with --int8")
    calib: list[Path] = []
    if args.int8:
        if args.calib is None:
            raise SettingsError(
                "--int8 needs --calib: a folder of images or a data.yaml whose "
                "--calib-split images are like those the model will serve"
            )
        if args.calib_max < 1:
            raise SettingsError(f"--calib-max must be at least 1, got {args.calib_max}")
        calib = select_images(calibration_images(args.calib, args.calib_split), args.calib_max)
    if args.evaluate is not None:
        dataset.load(args.evaluate).require_images(args.split)  # fails now, not after export
    check_output_file(args.json, "--json")
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        raise SettingsError(f"--out {args.out} is a file; give a folder for the .onnx files")
    out_dir: Path = args.out or weights.parent
    out_dir.mkdir(parents=True, exist_ok=True)

    models = {"fp32": export(weights, args.imgsz, out_dir, settings)}
    print(f"fp32  {models['fp32']}  ({_mb(models['fp32']):.1f} MB)")
    if args.int8:
        int8 = out_dir / f"{weights.stem}_int8.onnx"
        models["int8"] = quantize_int8(models["fp32"], calib, int8, args.imgsz, len(calib))
        print(
            f"int8  {int8}  ({_mb(int8):.1f} MB, calibrated on {len(calib)} images at "
            f"imgsz {args.imgsz})"
        )
    results: dict[str, EvalResult] = {}
    if args.evaluate is not None:
        for kind, path in models.items():
            results[kind] = evaluate(path, args.evaluate, settings, args.split, args.imgsz)
        print(format_table(list(results.values())))
        print(compare_table(list(results), list(results.values()), list(models.values())))
    if args.json:
        summary = {
            kind: {
                "path": str(path),
                "bytes": path.stat().st_size,
                **({"evaluation": results[kind].to_dict()} if kind in results else {}),
            }
            for kind, path in models.items()
        }
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


def calibration_images(source: Path, split: str = "train") -> list[Path]:
    """The images under a folder, or those of ``split`` of a data.yaml.

    Raises:
        DatasetError: the source does not exist, or the data set lacks the split.
    """
    from training import dataset
    from training.quantize import image_files

    if source.is_file() and source.suffix.lower() in YAML_SUFFIXES:
        return dataset.load(source).images(split)
    if source.is_dir():
        return image_files([source])
    raise DatasetError(
        f"--calib {source} is neither a folder of images nor a data set's .yaml file"
    )


def export(weights: Path, imgsz: int, out_dir: Path, settings: Settings) -> Path:
    """Export ``weights`` with :func:`training.train.export_onnx` into ``out_dir``.

    Ultralytics writes the export beside the checkpoint; a private copy of the checkpoint
    lets that work from a read-only folder and keeps the source folder untouched.
    """
    from training.train import export_onnx
    from training.ultra import error_text, import_ultralytics

    ultralytics = import_ultralytics(settings)
    dest = out_dir / f"{weights.stem}.onnx"
    with tempfile.TemporaryDirectory(prefix="pitchside-export-") as tmp:
        staged = Path(tmp) / weights.name
        shutil.copyfile(weights, staged)
        try:
            exported = export_onnx(ultralytics, staged, imgsz)
        except Exception as exc:  # Ultralytics raises whatever its loaders raise
            raise ModelError(f"Ultralytics could not export {weights}: {error_text(exc)}") from exc
        shutil.move(str(exported), str(dest))
    return dest


def compare_table(
    kinds: Sequence[str], results: Sequence[EvalResult], paths: Sequence[Path]
) -> str:
    """Headline figures of each model in one column each, the last against the first."""
    rows = [("size MB", [_mb(p) for p in paths], "{:.1f}")]
    for label, attr, fmt in (
        ("mAP50", "map50", "{:.3f}"),
        ("mAP50-95", "map50_95", "{:.3f}"),
        ("precision", "precision", "{:.3f}"),
        ("recall", "recall", "{:.3f}"),
        ("ms/image", "ms_per_image", "{:.1f}"),
    ):
        rows.append((label, [float(getattr(r, attr)) for r in results], fmt))
    lines = [f"  {'':<11}" + "".join(f"{k:>10}" for k in kinds) + ("  change" * (len(kinds) > 1))]
    for label, values, fmt in rows:
        line = f"  {label:<11}" + "".join(f"{fmt.format(v):>10}" for v in values)
        if len(values) > 1:
            first, last = values[0], values[-1]
            if label in ("size MB", "ms/image"):
                line += f"  x{last / first:.2f}" if first else ""
            else:
                line += f"  {last - first:+.3f}"
        lines.append(line)
    return "\n".join(lines)


def _mb(path: Path) -> float:
    return path.stat().st_size / 1e6
