"""Fitting fastrec's models on Dask collections: one entry point, one distributed algorithm per family."""

from __future__ import annotations

from typing import Any


def fit(model: Any, data: Any, *, client: Any = None, n_threads: int | None = None, **options: Any) -> Any:
    """Fit ``model`` on a Dask collection and return it, fitted, as the same single-machine class.

    The fitted model is an ordinary fastrec model: ``recommend``, ``predict``,
    ``save`` and pickling work as after a single-machine ``fit``.

    Parameters
    ----------
    model : fastrec.KMeans, fastrec.MatrixFactorization or fastrec.ALS
        An unfitted (or refitted) estimator; its parameters are the training
        parameters.  It is fitted in place and returned.
    data : dask.array.Array or fastrec.dask.DaskInteractions
        ``KMeans``: a Dask array of shape (n_samples, n_features), chunked by rows.
        ``MatrixFactorization`` and ``ALS``: the interactions from
        :func:`fastrec.dask.interactions`.
    client : distributed.Client, optional
        The client to run on; the default client when omitted, else Dask's local
        scheduler.
    n_threads : int, optional
        Threads per task; by default each task takes its share of its worker's threads.
    **options
        Options of the family's distributed algorithm, documented with it:
        ``sample_weight``, ``persist``, ``oversampling`` and ``n_rounds`` for
        ``KMeans`` (:func:`fastrec.dask._kmeans.fit_kmeans`); ``n_blocks`` (DSGD's d)
        and ``keep_interactions`` for ``MatrixFactorization``
        (:func:`fastrec.dask._dsgd.fit_mf`); ``block_size`` for ``ALS``.

    Returns
    -------
    model
        ``model``, fitted.

    Notes
    -----
    - ``KMeans``: Lloyd iterations with fastrec's fused assignment per chunk and the
      partial sums reduced across workers; ``init="k-means||"`` (Bahmani et al. 2012)
      is the distributed initialisation.
    - ``MatrixFactorization``: DSGD (Gemulla et al. 2011) over a d x d grid of
      user-group x item-group blocks.
    - ``ALS``: each half-step solves user or item blocks on the workers with the other
      side's factors sent once.
    """
    from fastrec.cluster import KMeans
    from fastrec.implicit import ALS
    from fastrec.mf import MatrixFactorization

    if isinstance(model, KMeans):
        from fastrec.dask._kmeans import fit_kmeans

        return fit_kmeans(model, data, client=client, n_threads=n_threads, **options)
    if isinstance(model, MatrixFactorization):
        from fastrec.dask._dsgd import fit_mf

        return fit_mf(model, data, client=client, n_threads=n_threads, **options)
    if isinstance(model, ALS):
        from fastrec.dask._als import fit_als

        return fit_als(model, data, client=client, n_threads=n_threads, **options)
    raise TypeError(
        f"fastrec.dask.fit trains fastrec.KMeans, fastrec.MatrixFactorization and fastrec.ALS, "
        f"not {type(model).__name__}; fit other models on one machine and serve them with "
        "fastrec.dask.recommend."
    )


def predict(model: Any, data: Any, *, client: Any = None, n_threads: int | None = None) -> Any:
    """Predictions of a fitted model for every row of a Dask collection, lazily.

    Parameters
    ----------
    model : fastrec.KMeans
        A fitted model.
    data : dask.array.Array
        Shape (n_samples, n_features), chunked by rows.
    client, n_threads
        As in :func:`fit`.  The labels are lazy and carry the centres in their
        graph, so whichever scheduler computes them runs it; ``client`` is
        accepted for symmetry and not needed.

    Returns
    -------
    dask.array.Array
        int64 labels of shape (n_samples,), chunked as ``data``'s rows; equal to
        ``model.predict`` on the whole array.
    """
    from fastrec.cluster import KMeans

    if isinstance(model, KMeans):
        from fastrec.dask._kmeans import predict_kmeans

        return predict_kmeans(model, data, client=client, n_threads=n_threads)
    raise TypeError(f"fastrec.dask.predict takes a fitted fastrec.KMeans, not {type(model).__name__}.")
