"""Dynamic batching: requests wait up to `max_wait` for others to join them, then the
batch (at most `max_batch` images) runs once on a worker thread, so throughput rises with
load while a lone request waits at most `max_wait`."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Callable, List, Optional, Tuple

import numpy as np


class DynamicBatcher:
    def __init__(self, predict: Callable[[np.ndarray], np.ndarray], max_batch: int = 8,
                 max_wait: float = 0.005,
                 on_batch: Optional[Callable[[int, float], None]] = None):
        self.predict, self.max_batch, self.max_wait = predict, max(1, max_batch), max_wait
        self.on_batch = on_batch
        self._queue: Optional[asyncio.Queue] = None
        self._task: Optional[asyncio.Task] = None

    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def submit(self, image: np.ndarray) -> np.ndarray:
        """The crack probability map of one (S, S, 3) BGR u8 image."""
        fut = asyncio.get_running_loop().create_future()
        await self._queue.put((image, fut))
        return await fut

    async def _gather(self) -> List[Tuple[np.ndarray, asyncio.Future]]:
        items = [await self._queue.get()]
        deadline = time.monotonic() + self.max_wait
        while len(items) < self.max_batch:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                items.append(await asyncio.wait_for(self._queue.get(), left))
            except asyncio.TimeoutError:
                break
        return [(img, fut) for img, fut in items if not fut.cancelled()]

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = await self._gather()
            if not items:
                continue
            t0 = time.perf_counter()
            try:
                probs = await loop.run_in_executor(
                    None, self.predict, np.stack([img for img, _ in items]))
            except Exception as e:  # noqa: BLE001 - every waiting request gets the error
                for _, fut in items:
                    if not fut.done():
                        fut.set_exception(e)
                continue
            if self.on_batch is not None:
                self.on_batch(len(items), time.perf_counter() - t0)
            for (_, fut), prob in zip(items, probs):
                if not fut.done():
                    fut.set_result(prob)
