#!/usr/bin/env python3
"""Make a tiny random Qwen3-VL checkpoint and transformers' reference outputs for vision parity.

Writes tests/golden/vision/qwen3_vl/: the Hugging Face folder (config.json, model.safetensors,
generation_config.json) of a `Qwen3VLForConditionalGeneration` with random weights, and
vl.safetensors with the inputs and outputs of one forward over two images and text:

  pixel_values [patches, C*T*P*P]   the processor's flattened patches (random here)
  grid_thw     [images, 3]          each image's (t, h, w) patch grid
  input_ids    [T]                  text, <vision_start>, image pads, <vision_end>, ...
  position_ids [3, T], rope_delta   get_rope_index's M-RoPE positions
  vision_embed [patches, hidden]    patch embedding + interpolated position embedding
  vision_hidden[patches, hidden]    the tower's last hidden states (before the merger)
  image_embeds [tokens, out_hidden] the merger's output, one row per image token
  deepstack.K  [tokens, out_hidden] the K-th DeepStack merger's output
  logits       [T, vocab]           the language model's logits over the whole sequence
  text_logits  [n, vocab]           a text-only prompt (1-D positions) through the same model
  greedy       [NEW]                generate()'s greedy continuation of the image prompt
  pos_table    [36, hidden]         not an output: the learned position table, for reference

and tests/golden/vision/images/: small PNG files of every colour type (RGB, grey, RGBA with
transparency composited on white as transformers does, palette, 1-bit, Adam7), JPEG files
(4:2:0, progressive 4:4:4, grey) and images.safetensors with, per
image i, what transformers' Qwen2VLImageProcessor (the torchvision backend Qwen3-VL uses) makes
of it with the tiny model's preprocessor_config.json:

  rgb.i          [H, W, 3] u8   the decoded picture after convert_to_rgb (PIL)
  resized.i      [h, w, 3] u8   after smart_resize's bicubic resize (torchvision, antialiased)
  pixel_values.i [n, 96]        rescaled, normalised, patchified
  grid.i         [3]            (t, h, w) patches
  pil_values.i   [n, 96]        the PIL backend's pixel values (informative: it resizes differently)

Run: ~/.venvs/yak-golden/bin/python tools/golden/make_vl_goldens.py
"""

import json
import shutil
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file
from transformers import GenerationConfig, Qwen3VLConfig, Qwen3VLForConditionalGeneration
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "tests" / "golden" / "vision" / "qwen3_vl"
# A byte-level BPE of 290 pieces, then these special tokens in this order (ids 290..296).
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
            "<|video_pad|>"]
BPE_SIZE = 290
VOCAB = 300
ENDOFTEXT, IM_START, IM_END, VSTART, VEND, IMAGE, VIDEO = range(BPE_SIZE, BPE_SIZE + 7)
EOS = IM_END
# A chatml template that places {"type": "image"} content parts as Qwen-VL's templates do.
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
CORPUS = ["Describe the picture.", "A red disc on a smooth gradient of colours.", "What is in the image?",
          "Compare the two pictures and say which one is brighter.", "The sky is blue and the grass is green.",
          "A small picture with edges, texture and noise."]
NEW_TOKENS = 24
MIN_MARGIN = 2e-3


def make_config():
    text = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                num_attention_heads=4, num_key_value_heads=2, head_dim=16, hidden_act="silu",
                max_position_embeddings=512, rms_norm_eps=1e-6,
                rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                 "mrope_section": [4, 2, 2], "mrope_interleaved": True})
    vision = dict(depth=3, hidden_size=32, hidden_act="gelu_pytorch_tanh", intermediate_size=64, num_heads=2,
                  in_channels=3, patch_size=4, spatial_merge_size=2, temporal_patch_size=2, out_hidden_size=64,
                  num_position_embeddings=36, deepstack_visual_indexes=[0, 2])
    cfg = Qwen3VLConfig(text_config=text, vision_config=vision, image_token_id=IMAGE, video_token_id=VIDEO,
                        vision_start_token_id=VSTART, vision_end_token_id=VEND, tie_word_embeddings=False)
    cfg.text_config.eos_token_id = EOS
    cfg.text_config.bos_token_id = None
    cfg._attn_implementation = "eager"
    cfg.text_config._attn_implementation = "eager"
    cfg.vision_config._attn_implementation = "eager"
    return cfg


def sequence(grids, merge):
    """Text, then each image as <vision_start> pads <vision_end>, text between and after."""
    ids = [5, 17, 33]
    for i, (t, h, w) in enumerate(grids):
        ids += [VSTART] + [IMAGE] * (t * h * w // (merge * merge)) + [VEND]
        ids += [40 + i, 41 + i] if i + 1 < len(grids) else [60, 61, 62]
    return ids


def margin_ok(scores):
    for s in scores:
        top = torch.topk(s[0].float(), 2).values
        if (top[0] - top[1]).item() < MIN_MARGIN:
            return False
    return True


PROCESSOR = dict(patch_size=4, temporal_patch_size=2, merge_size=2, image_mean=[0.5, 0.5, 0.5],
                 image_std=[0.5, 0.5, 0.5], size={"shortest_edge": 256, "longest_edge": 1536})


def picture(w, h, seed):
    """Smooth gradients, a disc and some noise: a picture with edges and texture."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([255 * x / max(w - 1, 1), 255 * y / max(h - 1, 1), 128 + 100 * np.sin(x / 3.0 + y / 5.0)], -1)
    disc = (x - w * 0.6) ** 2 + (y - h * 0.4) ** 2 < (min(w, h) * 0.3) ** 2
    img[disc] = [250, 30, 60]
    img += rng.normal(0, 12, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_image_goldens():
    out = REPO / "tests" / "golden" / "vision" / "images"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    tv = Qwen2VLImageProcessor(**PROCESSOR)
    pil = Qwen2VLImageProcessorPil(**PROCESSOR)
    images = []
    images.append(("rgb_45x70.png", Image.fromarray(picture(45, 70, 1), "RGB")))
    images.append(("grey_13x9.png", Image.fromarray(picture(13, 9, 2)[:, :, 0], "L")))
    rgba = np.concatenate([picture(30, 22, 3), (np.arange(30 * 22).reshape(22, 30, 1) * 7 % 256).astype(np.uint8)], -1)
    images.append(("rgba_30x22.png", Image.fromarray(rgba, "RGBA")))
    images.append(("palette_40x40.png", Image.fromarray(picture(40, 40, 4), "RGB").quantize(colors=37)))
    images.append(("rgb_96x64.png", Image.fromarray(picture(96, 64, 5), "RGB")))
    images.append(("bilevel_21x19.png", Image.fromarray(picture(21, 19, 6)[:, :, 0] > 128).convert("1")))
    pal = Image.fromarray(picture(24, 18, 7), "RGB").quantize(colors=16)
    pal.info["transparency"] = bytes([0, 90, 180, 255] * 4)
    images.append(("palette_alpha_24x18.png", pal))
    images.append(("interlaced_17x11.png", picture(17, 11, 8)))
    # JPEG (PIL writes with libjpeg-turbo): 4:2:0 at quality 75, 4:4:4 progressive, grey.
    images.append(("photo_420_50x37.jpg", (Image.fromarray(picture(50, 37, 9), "RGB"), dict(quality=75))))
    images.append(("photo_444_prog_33x41.jpg",
                   (Image.fromarray(picture(33, 41, 10), "RGB"), dict(quality=92, subsampling=0, progressive=True))))
    images.append(("grey_27x30.jpg", (Image.fromarray(picture(27, 30, 11)[:, :, 1], "L"), dict(quality=80))))
    tensors, names = {}, []
    for i, (name, im) in enumerate(images):
        if isinstance(im, tuple):
            im[0].save(out / name, **im[1])
            back = Image.open(out / name)
        elif isinstance(im, np.ndarray):
            (out / name).write_bytes(adam7_png(im))
            back = Image.open(out / name)
            assert (np.asarray(back.convert("RGB")) == im).all(), "PIL reads the interlaced file differently"
        else:
            im.save(out / name, transparency=im.info["transparency"]) if "transparency" in im.info else im.save(out / name)
            back = Image.open(out / name)
        rgb = convert_to_rgb_like_transformers(back)
        t = tv(images=[back], return_tensors="pt")
        p = pil(images=[back], return_tensors="pt")
        grid = t["image_grid_thw"][0]
        h, w = int(grid[1]) * 4, int(grid[2]) * 4
        from torchvision.transforms.v2 import functional as tvF
        chw = torch.from_numpy(np.asarray(rgb)).permute(2, 0, 1).contiguous()
        resized = tvF.resize(chw, [h, w], interpolation=tvF.InterpolationMode.BICUBIC, antialias=True)
        tensors[f"rgb.{i}"] = torch.from_numpy(np.asarray(rgb).copy())
        tensors[f"resized.{i}"] = resized.permute(1, 2, 0).contiguous()
        tensors[f"pixel_values.{i}"] = t["pixel_values"].contiguous()
        tensors[f"grid.{i}"] = grid.to(torch.int32)
        tensors[f"pil_values.{i}"] = p["pixel_values"].contiguous()
        names.append(name)
    # Not a golden: a CMYK JPEG, which yak refuses with a message.
    Image.fromarray(picture(8, 8, 12), "RGB").convert("CMYK").save(out / "cmyk_8x8.jpg")
    save_file(tensors, out / "images.safetensors")
    (out / "images.json").write_text(json.dumps({"files": names, "processor": PROCESSOR}, indent=1) + "\n")
    print("wrote", out, names)


def adam7_png(rgb):
    """An interlaced 8-bit RGB PNG (PIL cannot write one): the seven Adam7 passes, filter type
    cycling 0-4 row by row so every filter is exercised."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    h, w, _ = rgb.shape
    raw = bytearray()
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
    n = 0
    for x0, y0, dx, dy in passes:
        sub = rgb[y0::dy, x0::dx]
        if sub.size == 0:
            continue
        prev = np.zeros(sub.shape[1] * 3, dtype=np.int32)
        for row in sub.reshape(sub.shape[0], -1).astype(np.int32):
            f = n % 5
            n += 1
            left = np.concatenate([np.zeros(3, np.int32), row[:-3]])
            upleft = np.concatenate([np.zeros(3, np.int32), prev[:-3]])
            if f == 0:
                enc = row
            elif f == 1:
                enc = row - left
            elif f == 2:
                enc = row - prev
            elif f == 3:
                enc = row - (left + prev) // 2
            else:
                p = left + prev - upleft
                pa, pb, pc = abs(p - left), abs(p - prev), abs(p - upleft)
                pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prev, upleft))
                enc = row - pred
            raw += bytes([f]) + bytes((enc % 256).astype(np.uint8))
            prev = row
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 1)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(raw), 9)) +
            chunk(b"IEND", b""))


def convert_to_rgb_like_transformers(im):
    from transformers.image_transforms import convert_to_rgb
    return convert_to_rgb(im, return_numpy=True)


def make_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=BPE_SIZE, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(CORPUS * 20, trainer)
    assert tok.get_vocab_size() == BPE_SIZE, tok.get_vocab_size()
    tok.add_special_tokens(SPECIALS)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    fast.chat_template = CHAT_TEMPLATE
    assert fast.convert_tokens_to_ids("<|image_pad|>") == IMAGE
    return fast


def end_to_end(model, tokenizer):
    """transformers' own Qwen3VLProcessor from the chat messages to greedy tokens."""
    from transformers import Qwen3VLProcessor
    from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor
    images = REPO / "tests" / "golden" / "vision" / "images"
    proc = Qwen3VLProcessor(image_processor=Qwen2VLImageProcessor(**PROCESSOR), tokenizer=tokenizer,
                            video_processor=Qwen3VLVideoProcessor(patch_size=4, temporal_patch_size=2, merge_size=2),
                            chat_template=CHAT_TEMPLATE)
    cases = [("Describe the picture.", ["rgb_45x70.png"]),
             ("Compare the two pictures.", ["rgba_30x22.png", "rgb_96x64.png"])]
    out = []
    for text, files in cases:
        content = [{"type": "image"} for _ in files] + [{"type": "text", "text": text}]
        messages = [{"role": "user", "content": content}]
        prompt = proc.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        ims = [Image.open(images / f) for f in files]
        inputs = proc(text=[prompt], images=ims, return_tensors="pt")
        model.model.rope_deltas = None
        with torch.no_grad():
            gen = model.generate(**inputs, do_sample=False, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS,
                                 eos_token_id=None, pad_token_id=ENDOFTEXT)
        out.append({"text": text, "images": files, "prompt_ids": inputs["input_ids"][0].tolist(),
                    "greedy": gen[0, inputs["input_ids"].shape[1]:].tolist()})
    return out


def main():
    make_image_goldens()
    torch.manual_seed(0)
    cfg = make_config()
    grids = [[1, 4, 6], [1, 6, 8]]
    merge = cfg.vision_config.spatial_merge_size
    patch_dim = 3 * 2 * 4 * 4
    tokenizer = make_tokenizer()
    for seed in range(100):
        torch.manual_seed(seed)
        model = Qwen3VLForConditionalGeneration(cfg).eval()
        with torch.no_grad():
            for p in model.parameters():  # larger weights than the initializer: features that matter
                p.normal_(0.0, 0.08)
        n_patches = sum(t * h * w for t, h, w in grids)
        pixel_values = torch.randn(n_patches, patch_dim)
        grid_thw = torch.tensor(grids, dtype=torch.long)
        ids = torch.tensor([sequence(grids, merge)], dtype=torch.long)
        mm = (ids == IMAGE).to(torch.int32)
        with torch.no_grad():
            out = model(input_ids=ids, pixel_values=pixel_values, image_grid_thw=grid_thw, mm_token_type_ids=mm)
            gen = model.generate(input_ids=ids, pixel_values=pixel_values, image_grid_thw=grid_thw,
                                 mm_token_type_ids=mm, attention_mask=torch.ones_like(ids), do_sample=False,
                                 max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, output_scores=True,
                                 return_dict_in_generate=True, eos_token_id=None, pad_token_id=0)
        if margin_ok(gen.scores):
            break
    else:
        raise SystemExit("no seed gave greedy margins >= %g" % MIN_MARGIN)
    model.model.rope_deltas = None
    vis = model.model.visual
    captured = {}

    def keep_input(module, args):  # a pre-hook that returns None leaves the call unchanged
        captured["block0_in"] = args[0].clone()

    vis.blocks[0].register_forward_pre_hook(keep_input)
    with torch.no_grad():
        v = vis(pixel_values, grid_thw=grid_thw, return_dict=True)
        pos, delta = model.model.get_rope_index(ids, mm, image_grid_thw=grid_thw)
        text_ids = torch.tensor([[5, 9, 77, 3, 120, 8, 8, 31]], dtype=torch.long)
        text_logits = model(input_ids=text_ids).logits[0]
    tensors = {
        "pixel_values": pixel_values.contiguous(),
        "grid_thw": grid_thw.to(torch.int32),
        "input_ids": ids[0].to(torch.int32),
        "position_ids": pos[:, 0].to(torch.int32).contiguous(),
        "rope_delta": delta.reshape(1).to(torch.int32),
        "vision_embed": captured["block0_in"].contiguous(),
        "vision_hidden": v.last_hidden_state.contiguous(),
        "image_embeds": v.pooler_output.contiguous(),
        "logits": out.logits[0].contiguous(),
        "text_ids": text_ids[0].to(torch.int32),
        "text_logits": text_logits.contiguous(),
        "greedy": gen.sequences[0, ids.shape[1]:].to(torch.int32).contiguous(),
    }
    for k, f in enumerate(v.deepstack_features):
        tensors[f"deepstack.{k}"] = f.contiguous()
    if OUT.exists():
        shutil.rmtree(OUT)
    model.save_pretrained(OUT, safe_serialization=True)
    GenerationConfig(eos_token_id=EOS, do_sample=False).save_pretrained(OUT)
    Qwen2VLImageProcessor(**PROCESSOR).save_pretrained(OUT)
    tokenizer.save_pretrained(OUT)
    e2e = end_to_end(model, tokenizer)
    save_file(tensors, OUT / "vl.safetensors")
    (OUT / "golden.json").write_text(json.dumps({
        "seed": seed, "grids": grids, "new_tokens": NEW_TOKENS, "end_to_end": e2e,
        "transformers": __import__("transformers").__version__, "torch": torch.__version__,
        "note": "inputs and outputs are in vl.safetensors; see tools/golden/make_vl_goldens.py",
    }, indent=1) + "\n")
    print("wrote", OUT, "seed", seed, "tokens", ids.shape[1], "greedy", tensors["greedy"].tolist())


if __name__ == "__main__":
    main()
