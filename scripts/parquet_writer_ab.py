"""Times the ways of writing the store's files on the same frames, in turn, round by round.

    python scripts/parquet_writer_ab.py EVENTS.ndjson [ROUNDS]

The input is ingested once with the bench's configuration and each file's frame is kept as
the store was handed it. Then each round writes every frame to memory:

- ``store``: the store's own writer (Arrow's, encodings and statistics per column);
- ``polars``: Polars' ``write_parquet``, zstd at the same level, statistics on;
- ``store from chunks``: the store's writer, each frame first cut into as many in-order
  chunks as the partition had parts, written without the rechunk (a partition that was
  already in time order);
- ``store rechunked``: the same chunked frames through the store's writer as it is.

Prints the CPU seconds (all threads) and bytes of each way per round.
"""

from __future__ import annotations

import io
import sys
import tempfile
import time

import polars as pl
from qlingest import bench, store
from qlingest.pipeline import Pipeline


def frames_of(path: str) -> tuple[list[pl.DataFrame], list[int]]:
    """The sorted frame of every file an ingest of ``path`` writes, with its number of parts."""
    frames: list[pl.DataFrame] = []
    parts: list[int] = []
    buffered = Pipeline._buffered

    def keep(self: Pipeline, key):  # type: ignore[no-untyped-def]
        parts.append(len(self._buffers[key]))
        file = buffered(self, key)
        frames.append(store.sorted_by_time(file[1]).rechunk())
        return file

    Pipeline._buffered = keep  # type: ignore[method-assign]
    try:
        with (
            tempfile.TemporaryDirectory(prefix="qlingest-writer-ab-") as d,
            Pipeline(d, bench._bench_config()) as pipeline,
        ):
            pipeline.ingest_file(path)
            pipeline.close()
    finally:
        Pipeline._buffered = buffered  # type: ignore[method-assign]
    return frames, parts


def in_chunks(frame: pl.DataFrame, parts: int) -> pl.DataFrame:
    step = max(1, -(-frame.height // max(parts, 1)))
    return pl.concat([frame.slice(i, step) for i in range(0, frame.height, step)], rechunk=False)


def store_write(frame: pl.DataFrame, *, rechunk: bool = True) -> int:
    out = io.BytesIO()
    if rechunk:
        table = store._arrow_table(frame, None)
    else:
        table = store.plain_dictionaries(frame.to_arrow(compat_level=pl.CompatLevel.newest()))
    store.write_table(table, out, 3)
    return out.tell()


def polars_write(frame: pl.DataFrame) -> int:
    out = io.BytesIO()
    frame.write_parquet(out, compression="zstd", compression_level=3, statistics=True)
    return out.tell()


def main(path: str, rounds: int = 3) -> None:
    frames, parts = frames_of(path)
    chunked = [in_chunks(f, n) for f, n in zip(frames, parts, strict=True)]
    rows = sum(f.height for f in frames)
    print(f"{len(frames)} files, {rows:,} rows, {sum(parts)} parts")
    ways = {
        "store": lambda: sum(store_write(f) for f in frames),
        "polars": lambda: sum(polars_write(f) for f in frames),
        "store from chunks": lambda: sum(store_write(f, rechunk=False) for f in chunked),
        "store rechunked": lambda: sum(store_write(f) for f in chunked),
    }
    for n in range(rounds):
        for name, write in ways.items():
            cpu = time.process_time()
            size = write()
            print(
                f"round {n + 1}  {name:18s} {time.process_time() - cpu:6.3f} CPU s  {size:,} bytes"
            )


if __name__ == "__main__":
    main(sys.argv[1], *(int(a) for a in sys.argv[2:]))
