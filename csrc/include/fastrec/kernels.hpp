// Every kernel family, compiled once per SIMD level by the units in csrc/isa/.
// A new family adds its header here and its explicit instantiations below.
//
// Heavy families compile in units of their own, so that a level's units build in
// parallel: a unit defines FASTREC_KERNEL_PART to its part number (1: SGD MF,
// 2: every light family, 3: ALS, 4: BPR, 5: WARP); FASTREC_PART(n) says whether this unit
// compiles part n.
// Left undefined, a unit compiles all.
#pragma once

#ifndef FASTREC_KERNEL_PART
#define FASTREC_KERNEL_PART 0
#endif
#define FASTREC_PART(n) (FASTREC_KERNEL_PART == 0 || FASTREC_KERNEL_PART == (n))

#include "fastrec/similarity.hpp"
#include "fastrec/cluster.hpp"
#include "fastrec/metrics.hpp"
#include "fastrec/recommenders.hpp"
#include "fastrec/roofline.hpp"
#include "fastrec/mf.hpp"
#include "fastrec/bpr.hpp"
#include "fastrec/scoring.hpp"
#include "fastrec/warp.hpp"
#include "fastrec/weighting.hpp"
#include "fastrec/als.hpp"

#ifdef FASTREC_ISA_NS
namespace fastrec {
namespace FASTREC_ISA_NS {

#if FASTREC_PART(1)
template void sgd_mf_epoch<float>(const SgdMfArgs<float>&);
template void sgd_mf_epoch<double>(const SgdMfArgs<double>&);
template void mf_predict<float>(const MfPredictArgs<float>&);
template void mf_predict<double>(const MfPredictArgs<double>&);
#endif

#if FASTREC_PART(5)
template void warp_epoch<float>(const WarpEpochArgs<float>&);
template void warp_epoch<double>(const WarpEpochArgs<double>&);
template void warp_epoch_features<float>(const WarpEpochFeaturesArgs<float>&);
template void warp_epoch_features<double>(const WarpEpochFeaturesArgs<double>&);
#endif

#if FASTREC_PART(4)
template void bpr_samples<float>(const BprSamplesArgs<float>&);
template void bpr_samples<double>(const BprSamplesArgs<double>&);
template void bpr_epoch<float>(const BprEpochArgs<float>&);
template void bpr_epoch<double>(const BprEpochArgs<double>&);
#endif

#if FASTREC_PART(3)
template void als_half_step<float>(const AlsHalfStepArgs<float>&);
template void als_half_step<double>(const AlsHalfStepArgs<double>&);
#endif

#if FASTREC_PART(2)
template void cosine_topk<float, int32_t>(const CosineTopkArgs<float, int32_t>&);
template void cosine_topk<float, int64_t>(const CosineTopkArgs<float, int64_t>&);
template void cosine_topk<double, int32_t>(const CosineTopkArgs<double, int32_t>&);
template void cosine_topk<double, int64_t>(const CosineTopkArgs<double, int64_t>&);

template void kmeans_assign_dense<float>(const KMeansDenseArgs<float>&);
template void kmeans_assign_dense<double>(const KMeansDenseArgs<double>&);
template void kmeans_assign_csr<float, int32_t>(const KMeansCsrArgs<float, int32_t>&);
template void kmeans_assign_csr<float, int64_t>(const KMeansCsrArgs<float, int64_t>&);
template void kmeans_assign_csr<double, int32_t>(const KMeansCsrArgs<double, int32_t>&);
template void kmeans_assign_csr<double, int64_t>(const KMeansCsrArgs<double, int64_t>&);
template void sqdist_dense<float>(const SqDistArgs<float>&);
template void sqdist_dense<double>(const SqDistArgs<double>&);

template void sparse_score_topn<float, int32_t>(const SparseScoreTopnArgs<float, int32_t>&);
template void sparse_score_topn<float, int64_t>(const SparseScoreTopnArgs<float, int64_t>&);
template void sparse_score_topn<double, int32_t>(const SparseScoreTopnArgs<double, int32_t>&);
template void sparse_score_topn<double, int64_t>(const SparseScoreTopnArgs<double, int64_t>&);
template void dense_topn<float>(const DenseTopnArgs<float>&);
template void dense_topn<double>(const DenseTopnArgs<double>&);
template void ranking_metrics<int32_t>(const RankingMetricsArgs<int32_t>&);
template void ranking_metrics<int64_t>(const RankingMetricsArgs<int64_t>&);
template void topn<float, int32_t>(const TopnArgs<float, int32_t>&);
template void topn<float, int64_t>(const TopnArgs<float, int64_t>&);
template void topn<double, int32_t>(const TopnArgs<double, int32_t>&);
template void topn<double, int64_t>(const TopnArgs<double, int64_t>&);
template void fma_peak<float>(const FmaPeakArgs&);
template void stream<float>(const StreamArgs<float>&);

template void document_weight<float, int32_t>(const DocumentWeightArgs<float, int32_t>&);
template void document_weight<float, int64_t>(const DocumentWeightArgs<float, int64_t>&);
template void document_weight<double, int32_t>(const DocumentWeightArgs<double, int32_t>&);
template void document_weight<double, int64_t>(const DocumentWeightArgs<double, int64_t>&);
template void confidence_weight<float>(const ConfidenceWeightArgs<float>&);
template void confidence_weight<double>(const ConfidenceWeightArgs<double>&);
#endif

}  // namespace FASTREC_ISA_NS
}  // namespace fastrec
#endif
