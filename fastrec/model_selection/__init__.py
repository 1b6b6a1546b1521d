"""Model selection for recommenders: splitters, cross-validation and parameter searches.

* Splitters yield ``(train, test)`` rating sets in the form the data came in
  (``Interactions``, sparse matrix, tuple of arrays, DataFrame):
  :class:`KFold` (every rating tested once), and splitter objects over
  :func:`fastrec.datasets.train_test_split`: :class:`ShuffleSplit`,
  :class:`LeaveKOut`, :class:`LeaveLastKOut`, :class:`TemporalSplit`.
* :func:`cross_validate` fits a clone of a recommender per fold and scores it
  with rating metrics (rmse, mae through ``predict``) and ranking metrics at k
  (precision, recall, f1, ndcg, map, hit_rate through ``recommend``).
* :class:`GridSearchCV` and :class:`RandomizedSearchCV` cross-validate every
  candidate setting of a recommender's parameters on the same folds.

Folds run in ``n_jobs`` joblib workers whose models share the host's threads
instead of each taking all of them.
"""

from fastrec.model_selection._cross_validate import cross_validate
from fastrec.model_selection._search import GridSearchCV, RandomizedSearchCV
from fastrec.model_selection._split import (
    KFold,
    LeaveKOut,
    LeaveLastKOut,
    ShuffleSplit,
    TemporalSplit,
    check_cv,
)

__all__ = [
    "GridSearchCV",
    "KFold",
    "LeaveKOut",
    "LeaveLastKOut",
    "RandomizedSearchCV",
    "ShuffleSplit",
    "TemporalSplit",
    "check_cv",
    "cross_validate",
]
