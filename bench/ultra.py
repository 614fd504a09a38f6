"""(c) Ultralytics' own streaming loop: ``YOLO(model).predict(source=clip, stream=True)``.

Same model file, same ``imgsz``, ``conf`` and ``iou`` as the workers, and the same thread
count as far as Ultralytics lets one set it: torch threads through
``ultralytics.utils.torch_utils.NUM_THREADS`` (``select_device`` resets torch to it), and
ONNX Runtime's intra-op threads by handing the session it creates a ``SessionOptions``
with that count (Ultralytics passes none). Everything else is Ultralytics' choice, as a user
of it would get. The figure is results per second from the end of the warm-up, decoding
included (Ultralytics decodes with OpenCV inside its loop); a longer run loops over the clip.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from typing import Any

from bench.common import BenchConfig
from bench.stats import rate, summary_ms
from pitchside.errors import BenchError

SPINNING = "session.intra_op.allow_spinning"


@contextlib.contextmanager
def _ort_threads(threads: int) -> Iterator[list[Any]]:
    """While inside, ``onnxruntime.InferenceSession`` gets ``threads`` intra-op threads;
    yields the sessions created meanwhile."""
    import onnxruntime

    original = onnxruntime.InferenceSession
    created: list[Any] = []

    def session(path: Any, sess_options: Any = None, *args: Any, **kwargs: Any) -> Any:
        options = sess_options or onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        made = original(path, options, *args, **kwargs)
        created.append(made)
        return made

    onnxruntime.InferenceSession = session
    try:
        yield created
    finally:
        onnxruntime.InferenceSession = original


def run_ultralytics(config: BenchConfig, conf: float, iou: float) -> dict[str, Any]:
    """Iterate over Ultralytics' predictions on the clip; results per second after warm-up."""
    try:
        import torch
        import ultralytics
        from ultralytics.utils import torch_utils
    except ImportError as exc:
        raise BenchError(
            f"section (c) needs Ultralytics and PyTorch (the train extra): {exc}"
        ) from exc
    if not logging.getLogger().isEnabledFor(logging.INFO):
        logging.getLogger("ultralytics").setLevel(logging.WARNING)  # its "Loading ..." lines
    torch_utils.NUM_THREADS = config.threads
    torch.set_num_threads(config.threads)
    yolo = ultralytics.YOLO(str(config.model), task="detect")
    wanted = config.warmup + config.frames + 1  # n intervals need n + 1 results
    stamps: list[float] = []
    speeds: list[dict[str, float]] = []
    passes = 0
    with _ort_threads(config.threads) as sessions:
        while len(stamps) < wanted:
            passes += 1
            before = len(stamps)
            results = yolo.predict(
                source=str(config.clip), stream=True, imgsz=config.imgsz, conf=conf, iou=iou,
                device="cpu", verbose=False,
            )  # fmt: skip
            for result in results:
                stamps.append(time.perf_counter())
                speeds.append(dict(result.speed))
                if len(stamps) >= wanted:
                    break
            if len(stamps) == before:
                raise BenchError(f"Ultralytics produced no result for {config.clip}")
    timed = stamps[config.warmup :]
    elapsed = timed[-1] - timed[0]
    steady = speeds[config.warmup + 1 :]
    ort_threads = [s.get_session_options().intra_op_num_threads for s in sessions]
    return {
        "fps": round(rate(len(timed) - 1, elapsed), 3),
        "frames": len(timed) - 1,
        "warmup_frames": config.warmup,
        "seconds": round(elapsed, 3),
        "passes_over_clip": passes,
        "speed_ms": {
            stage: summary_ms([s[stage] for s in steady if stage in s])
            for stage in ("preprocess", "inference", "postprocess")
        },
        "ultralytics_version": ultralytics.__version__,
        "torch_threads": torch.get_num_threads(),
        "ort_intra_op_threads": ort_threads[0] if ort_threads else None,
        "ort_providers": list(sessions[0].get_providers()) if sessions else None,
        # The workers' engine turns spinning off; Ultralytics leaves ORT's default (on).
        "ort_allow_spinning": _spinning(sessions[0]) if sessions else None,
        "predictor_imgsz": list(getattr(yolo.predictor, "imgsz", []) or []),
    }


def _spinning(session: Any) -> str:
    try:
        return str(session.get_session_options().get_session_config_entry(SPINNING))
    except Exception:  # onnxruntime raises when the entry was never set
        return "unset (ORT default: 1)"
