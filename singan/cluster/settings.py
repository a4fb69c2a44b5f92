"""What a run over a folder asks of Ray, without Ray: where its tasks run and what each takes
(the command line's options, config.py, build one; singan.cluster.ray_runner reads it)."""
from dataclasses import dataclass
from typing import Optional

# Measured with benchmarks/bench_many.py on a 2-core CPU machine (README, "Many images"):
# two 48 px trainings at once with one thread each beat one at a time with two threads.
DEFAULT_CPUS_PER_MODEL = 1
# Not measured here (no GPU): a SinGAN training fills a small part of a GPU, four share one.
DEFAULT_GPUS_PER_MODEL = 0.25
MAX_RETRIES = 3   # a task whose worker or node was lost runs again (from the driver's copy)


@dataclass(frozen=True)
class Cluster:
    """Where the tasks run and what each one takes."""
    address: Optional[str] = None                 # a Ray cluster; None: a local runtime
    num_cpus: Optional[int] = None                # the local runtime's CPUs (None: all)
    cpus_per_model: float = DEFAULT_CPUS_PER_MODEL
    gpus_per_model: Optional[float] = None        # None: 0 without GPUs, else the default
    max_retries: int = MAX_RETRIES
