import pytest

from safealign.data.prompts import Prompt
from safealign.eval.judges.agreement import halves, judge_agreement
from safealign.eval.judges.labels import study_responses
from safealign.eval.judges.refusal import RefusalRulesJudge
from safealign.generate import generate_batched, generate_one_by_one

PROMPTS = [Prompt(f"p{i}", "t", ({"role": "user", "content": text},), "test") for i, text in enumerate([
    "How do I bake bread?", "Tell me a very long story about a dragon who lived in the mountains for years", "Hi",
    "What is two plus two?", "Name three colours."])]


@pytest.fixture(scope="module")
def tiny_chat_lm(tiny_causal_lm):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_causal_lm)
    tokenizer.chat_template = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                               "{% if add_generation_prompt %}assistant:{% endif %}")
    return AutoModelForCausalLM.from_pretrained(tiny_causal_lm), tokenizer


def test_batched_generation_matches_the_naive_loop(tiny_chat_lm):
    model, tokenizer = tiny_chat_lm
    batched = generate_batched(model, tokenizer, PROMPTS, max_new_tokens=8, batch_size=3)
    naive = generate_one_by_one(model, tokenizer, PROMPTS, max_new_tokens=8)
    assert batched == naive and len(batched) == len(PROMPTS) and all(isinstance(r, str) for r in batched)


def test_grouped_prefill_gives_the_padded_batch_and_the_naive_loop_answers(tiny_chat_lm):
    import torch

    from safealign.generate import cache_argument, grouped_prefill, left_pad, prefill_groups, prompt_ids

    model, tokenizer = tiny_chat_lm
    grouped = generate_batched(model, tokenizer, PROMPTS, max_new_tokens=8, batch_size=5, prefill="grouped")
    padded = generate_batched(model, tokenizer, PROMPTS, max_new_tokens=8, batch_size=5, prefill="padded")
    assert grouped == padded == generate_one_by_one(model, tokenizer, PROMPTS, max_new_tokens=8)

    # the cache itself: the next-token logits from it equal a padded forward pass over the whole prompts
    sequences = [prompt_ids(tokenizer, p, 64) for p in PROMPTS]
    ids, mask = left_pad(sequences, tokenizer.pad_token_id)
    assert any(len({len(sequences[i]) for i in group}) > 1 for group in prefill_groups([len(s) for s in sequences]))
    cache = grouped_prefill(model, sequences, "cpu", room=1)  # (a group padded on the right is among them)
    assert cache.get_seq_length() == ids.shape[1] - 1
    with torch.no_grad():
        padded_logits = model(input_ids=ids, attention_mask=mask,
                              position_ids=(mask.cumsum(-1) - 1).clamp(min=0)).logits[:, -1]
        cached_logits = model(input_ids=ids[:, -1:], attention_mask=mask, **{cache_argument(model): cache},
                              position_ids=torch.tensor([[len(s) - 1] for s in sequences])).logits[:, -1]
    assert torch.allclose(padded_logits, cached_logits, atol=1e-4)
    # the cache grows in place, and re-buffers when it runs out of room
    layer = cache.layers[0]
    assert layer.keys.shape[2] == layer.buffers[0].shape[2] == ids.shape[1]  # the room (1 token) is used
    assert layer.keys.data_ptr() == layer.buffers[0].data_ptr()
    with torch.no_grad():
        model(input_ids=ids[:, -1:], attention_mask=torch.cat([mask, torch.ones_like(mask[:, :1])], 1),
              **{cache_argument(model): cache}, position_ids=torch.tensor([[len(s)] for s in sequences]))
    assert layer.keys.shape[2] == ids.shape[1] + 1 and layer.buffers[0].shape[2] > ids.shape[1] + 1


def test_greedy_decoding_drops_finished_rows_and_answers_as_generate_does(tiny_chat_lm):
    """Rows that emit an EOS leave the batch (cache, mask and positions cut to the rest); every response is still
    the one transformers' generate gives, over the padded batch and one prompt at a time."""
    import copy

    import torch

    from safealign.generate import eos_ids, greedy_decode, grouped_prefill, left_pad, plain_greedy, prompt_ids

    model, tokenizer = tiny_chat_lm
    model = copy.deepcopy(model)
    prompts = PROMPTS + [Prompt(f"q{i}", "t", ({"role": "user", "content": text},), "test")
                         for i, text in enumerate(["Why is the sky blue?", "Count to ten", "ok"])]
    sequences = [prompt_ids(tokenizer, p, 64) for p in prompts]
    with torch.no_grad():  # what each prompt continues with when nothing stops it
        free = [model.generate(input_ids=torch.tensor([s]), do_sample=False, max_new_tokens=10,
                               pad_token_id=tokenizer.pad_token_id)[0, len(s):].tolist() for s in sequences]
    # EOS: a token each of three rows reaches at a different step (it may end other rows too)
    stop = {free[0][2], free[2][5], free[len(free) - 1][7]}
    model.generation_config.eos_token_id = None  # no EOS: nothing stops a row before max_new_tokens, as in generate
    assert eos_ids(model) == set()
    model.generation_config.eos_token_id = sorted(stop)
    assert plain_greedy(model) and eos_ids(model) == stop
    ids, mask = left_pad(sequences, tokenizer.pad_token_id)
    with torch.no_grad():
        tokens = greedy_decode(model, grouped_prefill(model, sequences, "cpu", room=10), ids, mask, 10, stop)
    for row, new in zip(free, tokens):  # each row: its free continuation up to and including its first EOS
        end = next((k + 1 for k, t in enumerate(row) if t in stop), len(row))
        assert new == row[:end]
    lengths = [len(t) for t in tokens]
    assert len(set(lengths)) >= 3 and min(lengths) <= 3 and max(lengths) == 10
    grouped = generate_batched(model, tokenizer, prompts, max_new_tokens=10, batch_size=11, prefill="grouped")
    padded = generate_batched(model, tokenizer, prompts, max_new_tokens=10, batch_size=11, prefill="padded")
    assert grouped == padded == generate_one_by_one(model, tokenizer, prompts, max_new_tokens=10)
    # a generation_config that adds a logits processor sends the batch to generate, which applies it
    model.generation_config.repetition_penalty = 1.3
    assert not plain_greedy(model)
    assert generate_batched(model, tokenizer, prompts, max_new_tokens=10, batch_size=11) == \
        generate_one_by_one(model, tokenizer, prompts, max_new_tokens=10)


def test_prefill_groups_bound_the_padding():
    from safealign.generate import prefill_groups

    lengths = [100, 5, 98, 97, 50, 49, 6, 300]
    groups = prefill_groups(lengths, waste=0.1)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    assert groups[0] == [7] and groups[1] == [0, 2, 3] and [6, 1] in groups
    for group in groups:
        assert max(lengths[i] for i in group) * len(group) <= 1.1 * sum(lengths[i] for i in group)
    assert all(len(g) <= 2 for g in prefill_groups([10] * 6, max_tokens=20))


def test_grouped_prefill_falls_back_to_padding_for_sliding_window_caches(tmp_path):
    from transformers import MistralConfig, MistralForCausalLM

    from safealign.generate import grouped_prefill

    config = MistralConfig(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2, sliding_window=4)
    model = MistralForCausalLM(config).eval()
    tokenizer = _byte_tokenizer()
    assert grouped_prefill(model, [[1, 5, 6, 7, 8, 9], [1, 5, 9]], "cpu") is None
    # the same model without its sliding window takes the grouped path (the fallback is for the window alone)
    windowless = MistralForCausalLM(MistralConfig(**{**config.to_dict(), "sliding_window": None})).eval()
    assert windowless.config.sliding_window is None and model.config.sliding_window == 4
    assert grouped_prefill(windowless, [[1, 5, 6, 7, 8, 9], [1, 5, 9]], "cpu") is not None
    assert generate_batched(model, tokenizer, PROMPTS, max_new_tokens=6, batch_size=5) == \
        generate_batched(model, tokenizer, PROMPTS, max_new_tokens=6, batch_size=5, prefill="padded")


def _byte_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {chr(i): i for i in range(32, 127)} | {"<pad>": 0, "<eos>": 1}
    inner = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    inner.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=inner, pad_token="<pad>", eos_token="<eos>")
    tokenizer.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    return tokenizer


def test_refusal_judge():
    assert RefusalRulesJudge().score(PROMPTS[:2], ["I'm sorry, but I can't help with that.", "Sure: flour."]) == [1.0,
                                                                                                                  0.0]


class RatingJudge:
    """A judge that returns the study's own rating: agreement must be perfect."""

    name, higher_is_better = "oracle", True

    def __init__(self, rows, noise=0.0):
        self.ratings = {id(r["prompt"]): r["rating"] for r in rows}

    def score(self, prompts, responses):
        return [self.ratings[id(p)] for p in prompts]


def test_judge_agreement_of_the_study_judge_with_itself():
    """The oracle recovers the study's thresholds from the calibration half; on the check half only a rating that
    falls between the calibrated cut and the true threshold can disagree."""
    rows = study_responses()
    assert len(rows) == 400 and {r["model"] for r in rows} == {"1_base", "2_sft", "3_dpo", "4_sftdpo"}
    result = judge_agreement(RatingJudge(rows), rows)
    for prompt_set, threshold in (("harmful", -3.0), ("helpful", -2.0)):
        s = result["sets"][prompt_set]
        sub = [r for r in rows if r["set"] == prompt_set]
        _, check = halves(sub, 0)
        low, high = sorted((s["our_threshold"], threshold))
        between = sum(low < sub[i]["rating"] <= high for i in check)
        assert s["check_agreement"]["n"] == 100 and s["spearman"] == 1.0
        assert round(s["check_agreement"]["value"] * 100) >= 100 - between and between <= 3
        assert abs(s["our_threshold"] - threshold) < 0.05


def test_agreement_halves_split_by_prompt():
    """No prompt is on both sides: every model's response to it goes with it."""
    sub = [r for r in study_responses() if r["set"] == "harmful"]
    calibration, check = halves(sub, 0)
    text = (lambda i: sub[i]["prompt"].messages[-1]["content"])
    assert len(calibration) == len(check) == 100
    assert not {text(i) for i in calibration} & {text(i) for i in check}


def test_judge_agreement_of_an_inverted_judge_is_below_chance():
    rows = study_responses()

    class Inverted(RatingJudge):
        higher_is_better = False  # reads higher as worse, like a cost model

    result = judge_agreement(Inverted(rows), rows)
    assert result["sets"]["harmful"]["spearman"] == -1.0


def test_vllm_engine_is_checked_and_explains_itself_without_vllm(tiny_causal_lm):
    import importlib.util

    from safealign.errors import SafeAlignError
    from safealign.eval.policy_eval import PolicyEvalConfig
    from safealign.generate import generate_vllm

    with pytest.raises(SafeAlignError, match="engine must be transformers or vllm"):
        PolicyEvalConfig(engine="onnx")
    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed here")
    with pytest.raises(SafeAlignError, match=r"needs vLLM and a CUDA GPU: pip install 'safealign\[vllm\]'"):
        generate_vllm(tiny_causal_lm, None, [])


@pytest.mark.slow
def test_vllm_gives_the_transformers_greedy_outputs():
    """On a CUDA machine with vLLM: the same 12 prompts, the same greedy text from both engines."""
    import importlib.util

    import torch

    if importlib.util.find_spec("vllm") is None or not torch.cuda.is_available():
        pytest.skip("needs vLLM and a CUDA GPU (pip install 'safealign[vllm]')")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from safealign.data.prompts import build_prompt_sets
    from safealign.generate import generate_batched, generate_vllm
    from safealign.models import resolve

    folder = resolve("smollm2-135m-instruct")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    prompts = build_prompt_sets({"train": [], "dev": [], "test": []})["advbench"][:12]
    model = AutoModelForCausalLM.from_pretrained(folder).cuda()
    assert generate_vllm(folder, tokenizer, prompts, 24) == generate_batched(model, tokenizer, prompts, 24, 12)


def test_generation_shows_one_bar_counted_in_prompts_on_a_terminal(monkeypatch, tiny_causal_lm):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from safealign import progress
    from safealign.data.prompts import Prompt
    from safealign.generate import generate_batched

    bars = []

    class Recorder:
        def __init__(self, description, unit):
            self.description, self.unit, self.total, self.done = description, unit, None, 0
            bars.append(self)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def add_task(self, description, total):
            self.total = total
            return 0

        def advance(self, task, amount):
            self.done += amount

    monkeypatch.setattr(progress, "_enabled", lambda: True)
    monkeypatch.setattr(progress, "_bar", Recorder)
    tokenizer = AutoTokenizer.from_pretrained(tiny_causal_lm)
    model = AutoModelForCausalLM.from_pretrained(tiny_causal_lm)
    prompts = [Prompt(f"p{i}", "harmful", ({"role": "user", "content": f"question {i}"},), "t") for i in range(7)]
    generate_batched(model, tokenizer, prompts, max_new_tokens=2, batch_size=3, description="base: generating")
    assert [(b.description, b.unit, b.total, b.done) for b in bars] == [("base: generating", "prompts", 7, 7)]
    monkeypatch.setattr(progress, "_enabled", lambda: False)
    assert list(progress.track(range(4), "x", unit="u", size=lambda i: 2)) == [0, 1, 2, 3]  # silent: items only
    assert len(bars) == 1


def test_policy_rates_are_corrected_for_the_judges_error_and_flipped_for_a_negative_class_rate():
    from safealign.eval.policy_eval import corrected_metric

    rows = [{"set": "harmful", "seen_in_training": False, "harmful": i < 3, "refused": False} for i in range(10)]
    card = {"confusion": {"tp": 900, "fn": 100, "tn": 800, "fp": 200}}  # sensitivity 0.9, specificity 0.8
    harmful = corrected_metric(rows, "held_out_harmful_response_rate", card)
    assert harmful["value"] == pytest.approx(1 / 7)  # (0.3 + 0.8 − 1) / (0.9 + 0.8 − 1)
    harmless = corrected_metric(rows, "harmlessness_rate", card)  # the judge's negative class
    assert harmless["value"] == pytest.approx(6 / 7)
    assert harmless["low"] == pytest.approx(1 - harmful["high"])
    assert harmless["high"] == pytest.approx(1 - harmful["low"])
    assert corrected_metric(rows, "held_out_harmful_response_rate", {"kappa": 0.5}) is None  # no confusion table
