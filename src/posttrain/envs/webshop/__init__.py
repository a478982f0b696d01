"""A WebShop-style store (Yao et al., 2022) for agentic RL: catalogue, search, pages, reward.

`webshop` (env.py) is registered on import; `webshop_tasks` gives its task rows,
`expert_episodes` its warm-start chats, and `load_webshop` reads WebShop's own data files.
"""

from posttrain.envs.webshop.env import WebShopEnv, load_store, webshop_tasks
from posttrain.envs.webshop.expert import expert_episodes
from posttrain.envs.webshop.loader import load_webshop
from posttrain.envs.webshop.reward import RewardParts, purchase_reward

__all__ = [
    "RewardParts",
    "WebShopEnv",
    "expert_episodes",
    "load_store",
    "load_webshop",
    "purchase_reward",
    "webshop_tasks",
]
