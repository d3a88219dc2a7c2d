"""Every judge and its validity card, in one folder.

Roles (cards.ROLES): **refusal** (did the response decline?), **harm** (does the response give harmful help?),
**helpfulness** (does it help with a benign request?). A judge maps (prompts, responses) to scores, higher =
more of its role's positive class, and a verdict is `score > threshold`. Each is independent of every arm.

- `refusal.py`     the offline refusal judge (rules on the response's opening) and the prefix baseline;
- `harm.py`        the offline harm judge, fitted on GPTFuzz (embedded, MIT; no arm trains on it);
- `helpfulness.py` the offline helpfulness judge;
- `encoders.py`    MiniLM embeddings shared by the judges, cached per machine;
- `hub.py`         the field's judges by hub id (Llama Guard 3, WildGuard, ShieldGemma, HarmBench, ...);
- `load.py`        the judge of a role by spec (offline, hub id, or a reward/cost run dir as a flagged
                   training signal), and a judges directory's cards;
- `labels.py`      the human-labelled rows (GPTFuzz, XSTest completions, the OPT-350M study, a reviewer's own);
- `cards.py`       validity cards: agreement with human labels on rows the judge was not fitted on;
- `build.py`       the audit's judges stage: fit or load the offline judges, write judges.json;
- `agreement.py`   agreement with the OPT-350M study's judge (deberta ratings).
"""

from safealign.eval.judges.build import build_judges, measure_hub_cards, measure_labelled_card
from safealign.eval.judges.cards import KAPPA_FLOOR, ROLES
from safealign.eval.judges.load import judge_card, like_judged_cards, load_judge, read_judges

__all__ = ["KAPPA_FLOOR", "ROLES", "build_judges", "judge_card", "like_judged_cards", "load_judge",
           "measure_hub_cards", "measure_labelled_card", "read_judges"]
