"""Prompts and generation shared by training (Safe RLHF samples) and evaluation: context trimming, chat
template, batches sorted by length, left padding.

`generate_batched` is what eval uses; `generate_one_by_one` is the naive loop it is benchmarked against
(benchmarks/bench_generate.py checks both give the same text); `generate_vllm` runs the same prompt ids
through vLLM (optional extra, a CUDA GPU) with temperature 0 and decodes the new tokens the same way.

Grouped prefill (`prefill="grouped"`, the default where the model's cache allows it): a left-padded batch
runs every prompt at the batch's longest length, so its prefill pays for the padding, and prefill is half the
compute at 50 new tokens. Instead the prompts go through the model in groups of similar length (at most 10%
padding, on the right, where the causal mask hides it; a group's shared opening, the chat template's system
turn, once), the key and value caches are cut to each prompt's length and left-padded into one batch, and
the batch decodes from there: the attention mask hides the padded slots and positions come from the mask, as
in a padded batch. The cache is preallocated with room for the new tokens (DynamicCache concatenates, copying
the whole cache at every step: two thirds of decoding time at batch 48 on a CPU).

Decoding (`greedy_decode`, where the model's generation_config adds no logits processor): transformers'
generate steps every row until the batch's last response ends; here finished rows leave the batch, which
pays where a policy's responses end early (benchmarks/profile_generation.py times both on the same prompts and
checks they give the same responses).
"""

from __future__ import annotations

import inspect

from safealign.data.prompts import Prompt
from safealign.errors import SafeAlignError
from safealign.models import load_options
from safealign.progress import track_batches


def trim_context(tokenizer, messages: list[dict], max_tokens: int) -> list[dict]:
    """Drop the earliest turns until the templated prompt fits; the last (human) turn is never dropped."""
    messages = list(messages)
    while len(messages) > 1 and _prompt_length(tokenizer, messages) > max_tokens:
        messages = messages[2:] if len(messages) > 2 else messages[1:]  # drop a (human, assistant) exchange
    return messages


def _prompt_length(tokenizer, messages: list[dict]) -> int:
    return len(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                             return_dict=True)["input_ids"])


def response_text(tokenizer, text: str, max_tokens: int) -> str:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return text if len(ids) <= max_tokens else tokenizer.decode(ids[:max_tokens])


def prompt_ids(tokenizer, prompt: Prompt, max_prompt_tokens: int) -> list[int]:
    """The chat-templated prompt, ending with the assistant's turn opener. A long one loses whole early turns,
    as in training (trim_context), so the template's system turn and every kept turn stay intact;
    only a last human turn too long on its own is cut, from its start."""
    messages = trim_context(tokenizer, list(prompt.messages), max_prompt_tokens)
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                        return_dict=True)["input_ids"]
    if len(ids) <= max_prompt_tokens:
        return ids
    last = tokenizer(messages[-1]["content"], add_special_tokens=False)["input_ids"]
    cut = len(ids) - max_prompt_tokens
    kept = tokenizer.decode(last[cut:]) if cut < len(last) else ""
    ids = tokenizer.apply_chat_template([{"role": "user", "content": kept}], add_generation_prompt=True,
                                        tokenize=True, return_dict=True)["input_ids"]
    return ids[-max_prompt_tokens:]


def left_pad(sequences: list[list[int]], pad_id: int):
    import torch

    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, width - len(seq):] = torch.tensor(seq, dtype=torch.long)
        mask[row, width - len(seq):] = 1
    return ids, mask


def cache_argument(model) -> str | None:
    """The name under which the model's forward takes and returns its key/value cache: `cache` from
    transformers 5.24 (`past_key_values` still works there, deprecated), `past_key_values` before; None if
    neither."""
    accepts = inspect.signature(model.forward).parameters
    return next((name for name in ("cache", "past_key_values") if name in accepts), None)


def _roomy_layer(keys, values, room: int):
    """A DynamicLayer holding `keys`/`values` in buffers with room for `room` more tokens."""
    from transformers.cache_utils import DynamicLayer

    class RoomyLayer(DynamicLayer):
        """update() writes the new tokens into the buffer instead of concatenating: DynamicLayer's torch.cat
        copies the whole cache at every decoding step, two thirds of the decoding time at batch 48 on a CPU.
        If something else replaced keys (beam reordering, batch selection) or the room ran out, it re-buffers."""

        def seed(self, keys, values, room):
            shape = (*keys.shape[:2], keys.shape[2] + room, keys.shape[3])
            self.buffers = keys.new_empty(shape), values.new_empty(shape)
            self.buffers[0][:, :, :keys.shape[2]] = keys
            self.buffers[1][:, :, :keys.shape[2]] = values
            self.keys, self.values = self.buffers[0][:, :, :keys.shape[2]], self.buffers[1][:, :, :keys.shape[2]]

        def update(self, key_states, value_states, *args, **kwargs):
            length, new = self.keys.shape[2], key_states.shape[2]
            buffer = self.buffers[0]
            if (self.keys.data_ptr() != buffer.data_ptr() or self.keys.shape[:2] != buffer.shape[:2]
                    or length + new > buffer.shape[2]):
                self.seed(self.keys, self.values, max(new, length))
            self.buffers[0][:, :, length:length + new] = key_states
            self.buffers[1][:, :, length:length + new] = value_states
            self.keys, self.values = self.buffers[0][:, :, :length + new], self.buffers[1][:, :, :length + new]
            return self.keys, self.values

        def select(self, rows):
            """Keep only these batch rows (a LongTensor of indices), buffers included."""
            length = self.keys.shape[2]
            self.buffers = self.buffers[0][rows], self.buffers[1][rows]
            self.keys, self.values = self.buffers[0][:, :, :length], self.buffers[1][:, :, :length]

    layer = RoomyLayer()
    layer.lazy_initialization(keys, values)
    layer.seed(keys, values, room)
    return layer


def prefill_groups(lengths: list[int], waste: float = 0.1, max_tokens: int = 4096) -> list[list[int]]:
    """Indices of sequences (sorted longest first) grouped so that padding each group to its longest costs at
    most `waste` more tokens than the group holds, and no group exceeds `max_tokens` padded tokens."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    groups: list[list[int]] = []
    for i in order:
        if groups:
            group = groups[-1]
            width, total = lengths[group[0]], sum(lengths[j] for j in group) + lengths[i]
            if width * (len(group) + 1) <= (1 + waste) * total and width * (len(group) + 1) <= max_tokens:
                group.append(i)
                continue
        groups.append([i])
    return groups


def _common_prefix(sequences: list[list[int]]) -> int:
    first = sequences[0]
    for i in range(min(len(s) for s in sequences)):
        if any(s[i] != first[i] for s in sequences):
            return i
    return min(len(s) for s in sequences)


def grouped_prefill(model, sequences: list[list[int]], device, room: int = 0):
    """The key/value cache of every sequence but its last token, left-padded into one batch of width
    max(len) - 1: a DynamicCache with room for `room` more tokens per layer.

    The sequences run in groups of similar length (prefill_groups: at most 10% padding), padded on the right:
    under the causal mask no real token sees the padding, and each row's cache is cut to its own length before
    the batch is assembled. The opening a group's sequences share (a chat template's system turn) runs once for
    the group. So the prefill neither pays for a left-padded batch's padding nor runs one small matrix product
    per prompt.
    None where the model's cache is not made of plain DynamicLayers (sliding-window or recurrent layers) or its
    forward takes no position_ids / logits_to_keep: the caller then pads the whole batch instead."""
    import torch
    import torch.nn.functional as F
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    def plain(cache) -> bool:
        return type(cache) is DynamicCache and all(type(layer) is DynamicLayer for layer in cache.layers)

    accepts = inspect.signature(model.forward).parameters
    name = cache_argument(model)
    if min(len(s) for s in sequences) < 2 or name is None or not {"position_ids", "logits_to_keep"} <= set(accepts):
        return None
    heads = [s[:-1] for s in sequences]  # the last token goes through generate, which then decodes
    width = max(len(h) for h in heads)
    rows: list = [None] * len(heads)
    with torch.no_grad():  # logits_to_keep=1: the prompt's logits are not needed, and lm_head is a fifth of the work
        for group in prefill_groups([len(h) for h in heads]):
            shared = min(_common_prefix([heads[i] for i in group]), min(len(heads[i]) for i in group) - 1)
            cache = None
            if shared > 0:
                prefix = getattr(model(input_ids=torch.tensor([heads[group[0]][:shared]], device=device),
                                       use_cache=True, logits_to_keep=1), name)
                if not plain(prefix):
                    return None
                cache = DynamicCache(ddp_cache_data=[(layer.keys.expand(len(group), -1, -1, -1),
                                                      layer.values.expand(len(group), -1, -1, -1))
                                                     for layer in prefix.layers])
            rest = [heads[i][shared:] for i in group]
            longest = max(len(r) for r in rest)
            ids = torch.tensor([r + [r[-1]] * (longest - len(r)) for r in rest], device=device)  # right padding
            positions = torch.arange(shared, shared + longest, device=device).expand(len(group), -1)
            cache = getattr(model(input_ids=ids, position_ids=positions, use_cache=True, logits_to_keep=1,
                                  **{name: cache}), name)
            if not plain(cache):
                return None
            for row, i in enumerate(group):
                n = len(heads[i])
                rows[i] = [(layer.keys[row: row + 1, :, :n],
                            layer.values[row: row + 1, :, :n]) for layer in cache.layers]
    layers = []
    for layer in range(len(rows[0])):
        keys = torch.cat([F.pad(row[layer][0], (0, 0, width - row[layer][0].shape[-2], 0)) for row in rows])
        values = torch.cat([F.pad(row[layer][1], (0, 0, width - row[layer][1].shape[-2], 0)) for row in rows])
        layers.append((keys, values))
    cache = DynamicCache(ddp_cache_data=layers)
    cache.layers = [_roomy_layer(keys, values, room) for keys, values in layers]
    return cache


# Generation settings that add a logits processor to greedy decoding, with their neutral values: where a model's
# generation_config sets one, greedy_decode steps aside and transformers' generate runs instead.
_PROCESSORS = {"repetition_penalty": 1.0, "no_repeat_ngram_size": 0, "encoder_no_repeat_ngram_size": 0,
               "bad_words_ids": None, "min_length": 0, "min_new_tokens": None, "sequence_bias": None,
               "suppress_tokens": None, "begin_suppress_tokens": None, "forced_bos_token_id": None,
               "forced_eos_token_id": None, "exponential_decay_length_penalty": None, "renormalize_logits": False,
               "stop_strings": None, "guidance_scale": 1.0, "watermarking_config": None}


def plain_greedy(model) -> bool:
    """True when the model's generation_config adds nothing to greedy decoding but stopping at its EOS."""
    config = getattr(model, "generation_config", None)
    return config is not None and all(getattr(config, name, None) in (None, neutral)
                                      for name, neutral in _PROCESSORS.items())


def eos_ids(model) -> set[int]:
    """The token ids that end a response: the generation_config's EOS (one or a list); none without one, where
    generate too decodes max_new_tokens."""
    eos = getattr(model.generation_config, "eos_token_id", None)
    return {int(e) for e in (eos if isinstance(eos, (list, tuple)) else [] if eos is None else [eos])}


def greedy_decode(model, cache, ids, mask, max_new_tokens: int, stop: set[int], prune: float = 0.125):
    """Greedy decoding from a grouped_prefill cache, dropping finished rows from the batch.

    ids, mask: the left-padded batch (B, T); the cache holds every token but the last (T - 1 slots, left-padded
    the same way). Each step feeds one token per row at its own position (its count of real tokens so far, as
    generate derives it from the mask) and appends the arg-max. A row is finished when it emits a token in
    `stop` (kept, as generate keeps it) or after max_new_tokens. transformers' generate runs every row until
    the batch's last one stops; here the finished rows leave the batch (cache, mask, positions) once they are
    at least `prune` of it, so a batch whose responses are mostly short stops paying for the long ones' steps.
    Returns each row's new tokens, in the batch's order."""
    import torch

    name = cache_argument(model)
    rows = list(range(ids.shape[0]))          # the batch row each row still decoding came from
    token = ids[:, -1:]
    positions = mask.sum(1, keepdim=True) - 1
    out: list[list[int]] = [[] for _ in rows]
    done = [False] * len(rows)
    for step in range(max_new_tokens):
        logits = model(input_ids=token, attention_mask=mask, position_ids=positions, use_cache=True,
                       logits_to_keep=1, **{name: cache}).logits[:, -1]
        nxt = logits.argmax(-1)
        for i, value in enumerate(nxt.tolist()):
            if not done[i]:
                out[rows[i]].append(value)
                done[i] = value in stop
        if all(done) or step == max_new_tokens - 1:
            break
        token, positions = nxt[:, None], positions + 1
        mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], 1)
        if sum(done) >= max(1.0, prune * len(rows)):
            keep = [i for i, finished in enumerate(done) if not finished]
            index = torch.tensor(keep, device=mask.device)
            for layer in cache.layers:
                layer.select(index)
            token, positions, mask = token[index], positions[index], mask[index]
            rows, done = [rows[i] for i in keep], [False] * len(keep)
    return out


def generate_batched(model, tokenizer, prompts: list[Prompt], max_new_tokens: int = 50, batch_size: int = 16,
                     max_prompt_tokens: int = 384, description: str = "generating",
                     prefill: str = "grouped") -> list[str]:
    """Greedy responses, one per prompt, in the prompts' order. prefill: "grouped" (see the module's doc) or
    "padded" (one left-padded forward pass over the batch, then generate's own cache)."""
    import torch

    if prefill not in ("grouped", "padded"):
        raise ValueError(f"prefill must be 'grouped' or 'padded', not {prefill!r}")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    positions = getattr(model.config, "max_position_embeddings", None) or max_prompt_tokens + max_new_tokens
    max_prompt_tokens = min(max_prompt_tokens, positions - max_new_tokens)
    encoded = [prompt_ids(tokenizer, p, max_prompt_tokens) for p in prompts]
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))  # similar lengths share a batch
    device = next(model.parameters()).device
    cache_name = cache_argument(model)
    responses: list[str | None] = [None] * len(prompts)
    model.eval()
    with torch.no_grad():
        for start in track_batches(len(order), batch_size, description, "prompts"):
            index = order[start: start + batch_size]
            sequences = [encoded[i] for i in index]
            ids, mask = left_pad(sequences, pad_id)  # (B, T)
            cache = (grouped_prefill(model, sequences, device, room=max_new_tokens)
                     if prefill == "grouped" else None)
            if cache is not None and plain_greedy(model):
                tokens = greedy_decode(model, cache, ids.to(device), mask.to(device), max_new_tokens,
                                       eos_ids(model))
            else:
                tokens = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), do_sample=False,
                                        max_new_tokens=max_new_tokens, pad_token_id=pad_id,
                                        **({cache_name: cache} if cache is not None else {}))[:, ids.shape[1]:]
            for row, i in enumerate(index):
                responses[i] = tokenizer.decode(tokens[row], skip_special_tokens=True).strip()
    return responses


def generate_one_by_one(model, tokenizer, prompts: list[Prompt], max_new_tokens: int = 50,
                        max_prompt_tokens: int = 384) -> list[str]:
    """The naive loop: one prompt per generate call, no padding."""
    import torch

    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    positions = getattr(model.config, "max_position_embeddings", None) or max_prompt_tokens + max_new_tokens
    max_prompt_tokens = min(max_prompt_tokens, positions - max_new_tokens)
    responses = []
    with torch.no_grad():
        for prompt in prompts:
            ids = torch.tensor([prompt_ids(tokenizer, prompt, max_prompt_tokens)])
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                 max_new_tokens=max_new_tokens, pad_token_id=pad_id)
            responses.append(tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip())
    return responses


def generate_vllm(folder: str, tokenizer, prompts: list[Prompt], max_new_tokens: int = 50,
                  max_prompt_tokens: int = 384) -> list[str]:
    """Greedy responses through vLLM, in the prompts' order; the same prompt ids and decoding as generate_batched."""
    try:
        from vllm import LLM, SamplingParams
    except ImportError:
        raise SafeAlignError("policy_eval.engine=vllm needs vLLM and a CUDA GPU: pip install 'safealign[vllm]'; "
                             "or use engine=transformers") from None

    llm = LLM(model=folder, tokenizer=folder, seed=0, trust_remote_code=load_options()["trust_remote_code"])
    positions = llm.llm_engine.model_config.max_model_len
    max_prompt_tokens = min(max_prompt_tokens, positions - max_new_tokens)
    requests = [{"prompt_token_ids": prompt_ids(tokenizer, p, max_prompt_tokens)} for p in prompts]
    outputs = llm.generate(requests, SamplingParams(temperature=0.0, max_tokens=max_new_tokens), use_tqdm=False)
    return [tokenizer.decode(list(out.outputs[0].token_ids), skip_special_tokens=True).strip() for out in outputs]
