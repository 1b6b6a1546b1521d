"""Clustering: KMeans for user segmentation, and readable segment profiles."""

from fastrec.cluster.kmeans import KMeans, kmeans_plusplus
from fastrec.cluster.profile import ClusterProfile, profile

__all__ = ["ClusterProfile", "KMeans", "kmeans_plusplus", "profile"]
