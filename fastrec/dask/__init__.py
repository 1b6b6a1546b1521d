"""fastrec on Dask: the same compiled kernels mapped over Dask collections.

Install with ``pip install fastrec[dask]``; import as ``fastrec.dask`` (``import
fastrec`` does not import it).  Every function partitions its input, sends the
model or the candidate side to the workers once, runs fastrec's own kernels in
each task with that task's share of the worker's threads, and reduces; no
function gathers a whole collection on the client.  Results equal the
single-machine ones under the same contracts (see each function).
"""

try:
    import dask.dataframe  # noqa: F401
except ImportError as exc:  # the optional extra is not installed
    raise ImportError(
        "fastrec.dask needs Dask: install the extra with `pip install fastrec[dask]` "
        "(dask[dataframe] and distributed)."
    ) from exc

from fastrec.dask._fit import fit, predict
from fastrec.dask._interactions import DaskInteractions, interactions
from fastrec.dask._metrics import evaluate, ranking_metrics
from fastrec.dask._recommend import recommend
from fastrec.dask._similarity import cosine_topk

__all__ = [
    "DaskInteractions",
    "cosine_topk",
    "evaluate",
    "fit",
    "interactions",
    "predict",
    "ranking_metrics",
    "recommend",
]
