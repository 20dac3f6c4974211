#!/usr/bin/env python3
"""Tokenizer goldens for yak's C++ tests (tests/tokenizer_*_test.cpp).

References: HF tokenizers/transformers (Qwen2 byte-level BPE, LlamaTokenizer on the
Chinese-LLaMA-2 SentencePiece model), sentencepiece itself, and jinja2 rendering of the
real chat templates through transformers' apply_chat_template.

Usage:  python tools/golden/make_tokenizer_goldens.py [--shared ../shared/data]
Writes: tests/golden/tokenizer/*.json (committed; tests never regenerate them).
"""
import argparse
import json
import re
import tempfile
from pathlib import Path

import sentencepiece as spm
import tokenizers
import transformers
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "golden" / "tokenizer"

# The multilingual text set shared by every tokenizer golden. Kept small so the C++ tests stay fast.
TEXTS = [
    "Hello world",
    " Hello world",
    "Hello, world! How are you doing today?",
    "The quick brown fox jumps over the lazy dog.",
    "我们的目标是让大语言模型在中文场景下更好用。",
    "今天天气很好，我们去公园散步吧！",
    "def add(a, b):\n    return a + b\n\nprint(add(2, 3))\n",
    "for (int i = 0; i < n; ++i) {\n\tsum += x[i];\n}",
    "Emoji: 😀👍🏽 family: 👨‍👩‍👧‍👦 flag: 🇨🇳 heart: ❤️",
    "Numbers: 1234567890 3.14159 -42 1,000,000 ２０２４年",
    "spaces:  two   three    four     end",
    "\n\n\nthree newlines then text\n",
    "tabs\tand\t\ttabs",
    "windows\r\nline\r\nendings\r\n",
    "trailing spaces   ",
    "   leading spaces",
    "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n",
    "<s>[INST] Bonjour [/INST] Salut </s>",
    "text<s>glued</s>text",
    "Café résumé naïve",
    "Cafe\u0301 re\u0301sume\u0301 A\u030angstro\u0308m",  # decomposed accents: NFC composes them
    "안녕하세요, 만나서 반갑습니다.",
    "日本語のテキストです。カタカナとひらがな。",
    "مرحبا بالعالم، كيف حالك؟",
    "Привет, мир! Как дела?",
    "Ελληνικά και עברית και हिन्दी",
    "I'm sure they'll say it's fine, we've done what we'd planned.",
    "MixedCASE camelCaseWords snake_case_words 123abc",
    "   ",
    "a",
    "🤖",
    "〇〡 ℃ ㎡ ① ½ ﬁ",
]

QWEN3_TEMPLATE = (
    "{%- if tools %}\n    {{- '<|im_start|>system\\n' }}\n    {%- if messages[0].role == 'system' %}\n"
    "        {{- messages[0].content + '\\n\\n' }}\n    {%- endif %}\n"
    "    {{- \"# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\nYou are provided with function signatures within <tools></tools> XML tags:\\n<tools>\" }}\n"
    "    {%- for tool in tools %}\n        {{- \"\\n\" }}\n        {{- tool | tojson }}\n    {%- endfor %}\n"
    "    {{- \"\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\\"name\\\": <function-name>, \\\"arguments\\\": <args-json-object>}\\n</tool_call><|im_end|>\\n\" }}\n"
    "{%- else %}\n    {%- if messages[0].role == 'system' %}\n"
    "        {{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}\n    {%- endif %}\n{%- endif %}\n"
    "{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}\n"
    "{%- for forward_message in messages %}\n    {%- set index = (messages|length - 1) - loop.index0 %}\n"
    "    {%- set message = messages[index] %}\n    {%- set tool_start = '<tool_response>' %}\n"
    "    {%- set tool_start_length = tool_start|length %}\n"
    "    {%- set start_of_message = message.content[:tool_start_length] %}\n"
    "    {%- set tool_end = '</tool_response>' %}\n    {%- set tool_end_length = tool_end|length %}\n"
    "    {%- set start_pos = (message.content|length) - tool_end_length %}\n"
    "    {%- if start_pos < 0 %}\n        {%- set start_pos = 0 %}\n    {%- endif %}\n"
    "    {%- set end_of_message = message.content[start_pos:] %}\n"
    "    {%- if ns.multi_step_tool and message.role == \"user\" and not(start_of_message == tool_start and end_of_message == tool_end) %}\n"
    "        {%- set ns.multi_step_tool = false %}\n        {%- set ns.last_query_index = index %}\n    {%- endif %}\n"
    "{%- endfor %}\n"
    "{%- for message in messages %}\n"
    "    {%- if (message.role == \"user\") or (message.role == \"system\" and not loop.first) %}\n"
    "        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}\n"
    "    {%- elif message.role == \"assistant\" %}\n        {%- set content = message.content %}\n"
    "        {%- set reasoning_content = '' %}\n"
    "        {%- if message.reasoning_content is defined and message.reasoning_content is not none %}\n"
    "            {%- set reasoning_content = message.reasoning_content %}\n        {%- else %}\n"
    "            {%- if '</think>' in message.content %}\n"
    "                {%- set content = (message.content.split('</think>')|last).lstrip('\\n') %}\n"
    "                {%- set reasoning_content = (message.content.split('</think>')|first).rstrip('\\n') %}\n"
    "                {%- set reasoning_content = (reasoning_content.split('<think>')|last).lstrip('\\n') %}\n"
    "            {%- endif %}\n        {%- endif %}\n"
    "        {%- if loop.index0 > ns.last_query_index %}\n"
    "            {%- if loop.last or (not loop.last and reasoning_content) %}\n"
    "                {{- '<|im_start|>' + message.role + '\\n<think>\\n' + reasoning_content.strip('\\n') + '\\n</think>\\n\\n' + content.lstrip('\\n') }}\n"
    "            {%- else %}\n                {{- '<|im_start|>' + message.role + '\\n' + content }}\n            {%- endif %}\n"
    "        {%- else %}\n            {{- '<|im_start|>' + message.role + '\\n' + content }}\n        {%- endif %}\n"
    "        {{- '<|im_end|>\\n' }}\n"
    "    {%- elif message.role == \"tool\" %}\n"
    "        {%- if loop.first or (messages[loop.index0 - 1].role != \"tool\") %}\n            {{- '<|im_start|>user' }}\n        {%- endif %}\n"
    "        {{- '\\n<tool_response>\\n' }}\n        {{- message.content }}\n        {{- '\\n</tool_response>' }}\n"
    "        {%- if loop.last or (messages[loop.index0 + 1].role != \"tool\") %}\n            {{- '<|im_end|>\\n' }}\n        {%- endif %}\n"
    "    {%- endif %}\n{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n    {{- '<|im_start|>assistant\\n' }}\n"
    "    {%- if enable_thinking is defined and enable_thinking is false %}\n        {{- '<think>\\n\\n</think>\\n\\n' }}\n    {%- endif %}\n"
    "{%- endif %}"
)

# Qwen/Qwen2-7B-Instruct tokenizer_config.json chat_template.
QWEN2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# Qwen3-VL-Instruct's template (Qwen/Qwen3-VL-*-Instruct chat_template.json), its text, image and
# tool-result branches; tools in the system turn and video parts are left out here (the tools
# format is Qwen2.5's, checked by make_tool_goldens.py). No default system turn; image parts
# become <|vision_start|><|image_pad|><|vision_end|>.
QWEN3_VL_TEMPLATE = (
    "{%- if messages[0].role == 'system' %}\n    {{- '<|im_start|>system\\n' }}\n"
    "    {%- if messages[0].content is string %}\n        {{- messages[0].content }}\n    {%- else %}\n"
    "        {%- for content in messages[0].content %}\n            {%- if 'text' in content %}\n"
    "                {{- content.text }}\n            {%- endif %}\n        {%- endfor %}\n    {%- endif %}\n"
    "    {{- '<|im_end|>\\n' }}\n{%- endif %}\n"
    "{%- for message in messages %}\n"
    "    {%- if message.role == \"user\" %}\n        {{- '<|im_start|>' + message.role + '\\n' }}\n"
    "        {%- if message.content is string %}\n            {{- message.content }}\n        {%- else %}\n"
    "            {%- for content in message.content %}\n"
    "                {%- if content.type == 'image' or 'image' in content or 'image_url' in content %}\n"
    "                    {{- '<|vision_start|><|image_pad|><|vision_end|>' }}\n"
    "                {%- elif 'text' in content %}\n                    {{- content.text }}\n                {%- endif %}\n"
    "            {%- endfor %}\n        {%- endif %}\n        {{- '<|im_end|>\\n' }}\n"
    "    {%- elif message.role == \"assistant\" %}\n        {{- '<|im_start|>' + message.role + '\\n' }}\n"
    "        {%- if message.content is string %}\n            {{- message.content }}\n        {%- else %}\n"
    "            {%- for content_item in message.content %}\n                {%- if 'text' in content_item %}\n"
    "                    {{- content_item.text }}\n                {%- endif %}\n            {%- endfor %}\n"
    "        {%- endif %}\n        {{- '<|im_end|>\\n' }}\n"
    "    {%- elif message.role == \"tool\" %}\n"
    "        {%- if loop.first or (messages[loop.index0 - 1].role != \"tool\") %}\n            {{- '<|im_start|>user' }}\n        {%- endif %}\n"
    "        {{- '\\n<tool_response>\\n' }}\n        {{- message.content }}\n        {{- '\\n</tool_response>' }}\n"
    "        {%- if loop.last or (messages[loop.index0 + 1].role != \"tool\") %}\n            {{- '<|im_end|>\\n' }}\n        {%- endif %}\n"
    "    {%- endif %}\n{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n    {{- '<|im_start|>assistant\\n' }}\n{%- endif %}\n"
)

# meta-llama/Llama-2-7b-chat-hf tokenizer_config.json chat_template.
LLAMA2_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
    "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}"
)
ALPACA2_SYSTEM = "You are a helpful assistant. 你是一个乐于助人的助手。"
# Chinese-Alpaca-2 uses the Llama-2 template with its own default system prompt.
ALPACA2_TEMPLATE = LLAMA2_TEMPLATE.replace(
    "{% set system_message = false %}", "{% set system_message = '" + ALPACA2_SYSTEM + "' %}"
)

CONVERSATIONS = {
    "single_user": [{"role": "user", "content": "你好，介绍一下你自己。"}],
    "with_system": [
        {"role": "system", "content": "You are a terse assistant."},
        {"role": "user", "content": "What is 2+2?"},
    ],
    "multi_turn": [
        {"role": "system", "content": "Answer in English."},
        {"role": "user", "content": "Hi there!"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": " Tell me a joke. "},
    ],
    "multi_turn_no_system": [
        {"role": "user", "content": "第一个问题"},
        {"role": "assistant", "content": "第一个回答"},
        {"role": "user", "content": "第二个问题"},
    ],
    "ends_with_assistant": [
        {"role": "user", "content": "Say hi"},
        {"role": "assistant", "content": "hi"},
    ],
    "assistant_with_think": [
        {"role": "user", "content": "1+1?"},
        {"role": "assistant", "content": "<think>\nadd them\n</think>\n\n2"},
        {"role": "user", "content": "2+2?"},
    ],
}


# Conversations with pictures (content parts), rendered by the qwen3-vl family only. yak's messages
# carry an image as the placeholder text the template writes for it.
VL_CONVERSATIONS = {
    "image_then_text": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe the picture."}]}],
    "two_images_system": [
        {"role": "system", "content": "You see pictures."},
        {"role": "user", "content": [{"type": "text", "text": "Compare "}, {"type": "image"},
                                     {"type": "text", "text": " with "}, {"type": "image"}]},
        {"role": "assistant", "content": "The first is brighter."},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "And this one?"}]},
    ],
}


def write(name, obj):
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / name, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print("wrote", OUT / name)


def hf_cases(tok, texts):
    rows = []
    for t in texts:
        ids = tok.encode(t, add_special_tokens=False)
        ids_sp = tok.encode(t, add_special_tokens=True)
        rows.append({
            "text": t,
            "ids": ids,
            "ids_add_special": ids_sp,
            "decoded": tok.decode(ids, skip_special_tokens=False),
            "decoded_skip_special": tok.decode(ids, skip_special_tokens=True),
        })
    return rows


def qwen2(shared):
    src = shared / "tokenizers" / "qwen2"
    tok = AutoTokenizer.from_pretrained(str(src))
    with tempfile.TemporaryDirectory() as d:
        tok.save_pretrained(d)
        tj = Path(d) / "tokenizer.json"
        size = tj.stat().st_size
        print("qwen2 tokenizer.json size", size)
        if size < 8 * 1024 * 1024:
            (OUT / "qwen2_tokenizer.json").write_bytes(tj.read_bytes())
    write("qwen2_ids.json", {"source": "transformers Qwen2Tokenizer from vocab.json+merges.txt",
                             "vocab_size": len(tok), "cases": hf_cases(tok, TEXTS)})
    return tok


def llama(shared):
    """Reference ids: SentencePiece's own segmentation (the algorithm the model was trained with) with
    transformers' LlamaTokenizer(legacy=False) handling of special tokens: <s>, </s>, <unk> written in
    the text are control tokens, and the dummy "▁" prefix goes only at the very start of the text.
    transformers 5's LlamaTokenizer is a BPE converted from the .model whose merges segment some
    Chinese and indented code differently from sentencepiece; its ids are kept as hf_fast_ids."""
    from sentencepiece import sentencepiece_model_pb2 as pb
    model = shared / "tokenizers" / "chinese-llama-2" / "tokenizer.model"
    sp = spm.SentencePieceProcessor(model_file=str(model))
    proto = pb.ModelProto()
    proto.ParseFromString(model.read_bytes())
    proto.normalizer_spec.add_dummy_prefix = False
    sp_noprefix = spm.SentencePieceProcessor(model_proto=proto.SerializeToString())
    tok = AutoTokenizer.from_pretrained(str(model.parent))
    specials = {"<s>": 1, "</s>": 2, "<unk>": 0}

    def ref_encode(text, add_special):
        ids = [1] if add_special else []
        for i, part in enumerate(re.split("(<s>|</s>|<unk>)", text)):
            if part in specials:
                ids.append(specials[part])
            elif part:
                ids += sp.encode(part) if i == 0 else sp_noprefix.encode(part)
        return ids

    rows = []
    for t in TEXTS:
        ids = ref_encode(t, False)
        ids_sp = ref_encode(t, True)
        rows.append({
            "text": t, "ids": ids, "ids_add_special": ids_sp,
            "decoded": tok.decode(ids, skip_special_tokens=False),
            "decoded_skip_special": tok.decode(ids, skip_special_tokens=True),
            "decoded_add_special": tok.decode(ids_sp, skip_special_tokens=False),
            "sentencepiece_ids": sp.encode(t),
            "sentencepiece_decoded": sp.decode(sp.encode(t)),
            "hf_fast_ids": tok.encode(t, add_special_tokens=False),
        })
    write("chinese_llama2_ids.json", {
        "source": "sentencepiece segmentation + transformers LlamaTokenizer(legacy=False) special tokens; "
                  f"decode by transformers {type(tok).__name__}",
        "vocab_size": len(tok), "cases": rows})


def tiny_bpe():
    """A tiny byte-level BPE trained on project-written text, committed with its goldens."""
    corpus = TEXTS * 3 + [
        "yak is one C++ toolkit for the whole life of a language model.",
        "Tokenizers turn text into ids; the engine turns ids into more text.",
        "分词器把文本变成编号，推理引擎再把编号变回文本。",
        "Streaming output never prints half a character: 中文、日本語、한국어、emoji 🎉.",
        "The quick brown yak grazes on the high plateau, far above the clouds.",
    ] * 5
    specials = ["<|bos|>", "<|eos|>", "<|pad|>", "<|im_start|>", "<|im_end|>"]
    qwen_regex = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
                  r"""|\s*[\r\n]+|\s+(?!\S)|\s+""")

    def build(kind):
        t = Tokenizer(models.BPE())
        if kind == "split":
            t.normalizer = normalizers.NFC()
            t.pre_tokenizer = pre_tokenizers.Sequence([
                pre_tokenizers.Split(Regex(qwen_regex), behavior="isolated", invert=False),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
        else:
            t.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)
        t.decoder = decoders.ByteLevel()
        tr = trainers.BpeTrainer(vocab_size=500, special_tokens=specials, show_progress=False,
                                 initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        t.train_from_iterator(corpus, tr)
        if kind == "split":
            t.post_processor = processors.TemplateProcessing(
                single="<|bos|> $A", pair="<|bos|> $A <|bos|> $B",
                special_tokens=[("<|bos|>", t.token_to_id("<|bos|>"))])
        else:
            t.post_processor = processors.ByteLevel(trim_offsets=False)
        # A non-special added token checks the special flag end to end.
        t.add_tokens([tokenizers.AddedToken("yak::tok", special=False, normalized=False)])
        return t

    for kind, name in (("split", "tiny_bpe"), ("gpt2", "tiny_bpe_gpt2")):
        t = build(kind)
        t.save(str(OUT / f"{name}.json"))
        rows = []
        for text in TEXTS + ["yak::tok is a namespace", "<|bos|>x<|eos|>"]:
            ids = t.encode(text, add_special_tokens=False).ids
            rows.append({"text": text, "ids": ids,
                         "ids_add_special": t.encode(text, add_special_tokens=True).ids,
                         "decoded": t.decode(ids, skip_special_tokens=False),
                         "decoded_skip_special": t.decode(ids, skip_special_tokens=True)})
        write(f"{name}_ids.json", {"source": f"HF tokenizers {tokenizers.__version__}",
                                   "vocab_size": t.get_vocab_size(), "cases": rows})


def chat(shared):
    qwen_cfg = json.load(open(shared / "tokenizers" / "qwen2" / "tokenizer_config.json"))
    # A tokenizer object only carries the template and bos/eos for rendering.
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.BPE()), bos_token="<s>", eos_token="</s>")
    families = {
        "chatml": QWEN2_TEMPLATE,
        # The shared Qwen2 fine-tune's own template: same text as chatml when the conversation
        # ends with a user turn and a generation prompt is asked for (the tests check only those).
        "chatml_shared": qwen_cfg["chat_template"],
        "qwen3": QWEN3_TEMPLATE,
        "llama2": LLAMA2_TEMPLATE,
        "alpaca2": ALPACA2_TEMPLATE,
        "qwen3-vl": QWEN3_VL_TEMPLATE,
    }
    out = {"templates": families, "cases": []}
    for fam, tpl in families.items():
        convs = dict(CONVERSATIONS, **VL_CONVERSATIONS) if fam == "qwen3-vl" else CONVERSATIONS
        for conv_name, msgs in convs.items():
            for agp in (True, False):
                for think in ((True, False) if fam == "qwen3" else (True,)):
                    if fam in ("llama2", "alpaca2") and conv_name == "assistant_with_think":
                        continue
                    if fam == "chatml_shared" and (not agp or msgs[-1]["role"] != "user"):
                        continue
                    kw = {"enable_thinking": think} if fam == "qwen3" else {}
                    text = tok.apply_chat_template(msgs, chat_template=tpl, tokenize=False,
                                                   add_generation_prompt=agp, **kw)
                    out["cases"].append({"family": fam, "conversation": conv_name,
                                         "add_generation_prompt": agp, "enable_thinking": think,
                                         "messages": msgs, "text": text})
    write("chat_templates.json", out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=str(ROOT.parent / "shared" / "data"))
    a = ap.parse_args()
    shared = Path(a.shared)
    OUT.mkdir(parents=True, exist_ok=True)
    write("texts.json", TEXTS)
    tiny_bpe()
    qwen2(shared)
    llama(shared)
    chat(shared)
    print("transformers", transformers.__version__, "tokenizers", tokenizers.__version__,
          "sentencepiece", spm.__version__)


if __name__ == "__main__":
    main()
