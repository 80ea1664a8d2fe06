"""VBench's temporal flickering, the evaluation dimension that needs no network and no weights.

VBench (Huang et al., CVPR 2024, §3.1 "Temporal Flickering"; `vbench/temporal_flickering.py` in
Vchitect/VBench) scores a clip by the mean absolute difference between consecutive frames:

    score = (255 − mean_t MAE(frame_t, frame_t+1)) / 255,  MAE over every pixel and channel,

so a static clip scores 1 and every intensity jump between frames lowers it. VBench reports the mean
over clips on this [0, 1] scale (its leaderboard prints it ×100). It is meant for static-scene prompts;
on prompts with motion the score also falls with real movement, so compare it across rounds on the
same prompts and seeds (as the evaluate stage does), not against VBench's published numbers.
"""

import numpy as np


def temporal_flickering(frames: np.ndarray) -> float:
    """VBench's temporal-flickering score of one clip.

    Args:
        frames: uint8 array of shape (T, H, W, 3), T ≥ 2; channel order does not matter.

    Returns:
        (255 − mean over t of mean |frames[t+1] − frames[t]|) / 255, in [0, 1]; 1 for a static clip.

    Raises:
        ValueError: Not a uint8 (T, H, W, 3) array, or fewer than 2 frames.
    """
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 of shape (T, H, W, 3), got {frames.dtype} {frames.shape}")
    if frames.shape[0] < 2:
        raise ValueError(f"temporal flickering needs at least 2 frames, got {frames.shape[0]}")
    # int16 so the difference of two uint8 values neither wraps nor needs a float copy of the clip.
    diffs = np.abs(np.diff(frames.astype(np.int16), axis=0))  # (T-1, H, W, 3)
    per_pair_mae = diffs.reshape(diffs.shape[0], -1).mean(axis=1)  # (T-1,)
    return float((255.0 - per_pair_mae.mean()) / 255.0)
