"""What a scoring app's routes share: one :class:`ServingState`, set once by ``create_app``.

Kept apart from :mod:`~opsloop_fastapi.app`, so the parts it holds (the follower, the
front, the scorer) can name it without importing the app.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opsloop_fastapi.threadname import name_native_thread

if TYPE_CHECKING:
    from opsloop.project import Project
    from opsloop_fastapi.follow import Follower
    from opsloop_fastapi.front import Router
    from opsloop_fastapi.metrics import ServerMetrics
    from opsloop_fastapi.predlog import FeedbackLog, PredictionLog
    from opsloop_fastapi.scoring import Scorer, ShadowRunner
    from opsloop_fastapi.served import ModelHolder
    from opsloop_fastapi.settings import Settings


@dataclass
class ServingState:
    """What the routes share: set once by :func:`create_app`, read by every request."""

    project: Project
    settings: Settings
    holder: ModelHolder
    metrics: ServerMetrics
    scorer: Scorer
    prediction_log: PredictionLog | None
    feedback_log: FeedbackLog
    router: Router
    limiter: Any
    pool: ThreadPoolExecutor
    shadow: ShadowRunner | None
    admin_token: str | None
    follower: Follower | None = None
    ready: bool = False
    stopped: bool = field(default=False)

    @property
    def shadow_enabled(self) -> bool:
        return self.shadow is not None

    def start(self) -> None:
        if self.stopped:  # started again after a stop (an ASGI host may restart the lifespan)
            self.stopped = False
            self.pool = ThreadPoolExecutor(
                self.settings.model_threads,
                thread_name_prefix="opsloop-model",
                initializer=name_native_thread,
            )
        if self.prediction_log is not None:
            self.prediction_log.start()
        self.feedback_log.start()
        if self.shadow is not None:
            self.shadow.start()
        if self.scorer.after is not None:
            self.scorer.after.start()
        if self.follower is not None:
            self.follower.start()
        freeze_heap()
        self.ready = True

    def stop(self) -> None:
        """Stop taking traffic as ready, then flush the logs and stop the threads."""
        self.ready = False
        if self.stopped:
            return
        self.stopped = True
        timeout = self.settings.shutdown_timeout
        if self.follower is not None:
            self.follower.stop(timeout)
        if self.shadow is not None:
            self.shadow.stop(timeout)
        if self.scorer.after is not None:
            self.scorer.after.stop(timeout)  # hands its last entries to the log
        if self.prediction_log is not None:
            self.prediction_log.close(timeout=timeout)
        self.feedback_log.close(timeout=timeout)
        self.pool.shutdown(wait=False, cancel_futures=True)


def freeze_heap() -> None:
    """Move everything alive now out of the cyclic GC's sight (the model, the libraries).

    A server process holds a million long-lived objects (pandas, scikit-learn, MLflow);
    a full collection walks them all and stalls every request for 100 ms or more. Frozen
    objects are still freed by reference counting.
    """
    import gc

    gc.collect()
    gc.freeze()
