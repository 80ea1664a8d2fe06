"""Every table column name, defined once.

Stages index tables with these constants (`table[col.VERDICT]`) so that a rename is one edit and a
typo is an import error rather than a KeyError deep inside a Ray task. A name shared by several
tables (e.g. `prompt_id`) means the same thing in each of them.
"""

from typing import Final

# Identifiers.
PROMPT_ID: Final = "prompt_id"
CANDIDATE_ID: Final = "candidate_id"
LABEL_ID: Final = "label_id"
PAIR_ID: Final = "pair_id"
VIDEO_ID: Final = "video_id"
VIDEO_ID_B: Final = "video_id_b"

# Prompts.
TEXT: Final = "text"
SPEC_JSON: Final = "spec_json"
SOURCE: Final = "source"

# Candidates (generated videos).
SEED: Final = "seed"
GENERATOR_VERSION: Final = "generator_version"
LATENT_PATH: Final = "latent_path"
VIDEO_PATH: Final = "video_path"
VIDEO_PATH_B: Final = "video_path_b"
ROUND: Final = "round"

# Labels (one row per judged item and dimension).
KIND: Final = "kind"
PROMPT: Final = "prompt"
DIMENSION: Final = "dimension"
VERDICT: Final = "verdict"
REASON: Final = "reason"
VOTES_GOOD: Final = "votes_good"
VOTES_NORMAL: Final = "votes_normal"
VOTES_BAD: Final = "votes_bad"
VOTES_A: Final = "votes_a"
VOTES_B: Final = "votes_b"
VOTES_TIE: Final = "votes_tie"
CERTAINTY: Final = "certainty"
CRITIC_VERSION: Final = "critic_version"
ANNOTATOR: Final = "annotator"

# Preference pairs.
WINNER_CANDIDATE_ID: Final = "winner_candidate_id"
LOSER_CANDIDATE_ID: Final = "loser_candidate_id"
WINNER_LATENT_PATH: Final = "winner_latent_path"
LOSER_LATENT_PATH: Final = "loser_latent_path"
WINNER_REWARD: Final = "winner_reward"
LOSER_REWARD: Final = "loser_reward"

# Real videos.
CAPTION: Final = "caption"

# Per-candidate training samples (Diffusion-KTO, reward-weighted learning, rejection sampling).
PROMPT_EMBEDS_PATH: Final = "prompt_embeds_path"
REWARD: Final = "reward"
DESIRABLE: Final = "desirable"
PASSES: Final = "passes"

# Critic answers (every sampled answer behind a label; the SRPO loss's chosen/rejected texts).
ANSWER_ID: Final = "answer_id"
SAMPLE_INDEX: Final = "sample_index"
ANSWER_TEXT: Final = "answer_text"
ANSWER_VERDICT: Final = "answer_verdict"
