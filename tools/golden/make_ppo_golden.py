#!/usr/bin/env python3
"""Golden of one full PPO update (src/yak/train/ppo_trainer.cpp, PpoLearner::update).

A plain torch transcription of OpenRLHF's PPO step for fixed rollouts and rewards, on
transformers models (OpenRLHF itself is not imported: it pulls in deepspeed and ray):
  * actor: tests/golden/models/llama_mha_f32 (LlamaForCausalLM, f32);
  * reference: the actor with Gaussian noise (std 0.02) on every weight, written to
    tests/golden/ppo/reference so the KL penalty is not zero;
  * critic: LlamaForSequenceClassification of the same config (seed 1), written to
    tests/golden/ppo/critic; per-token values = score(last_hidden_state).
Experience (openrlhf/trainer/ppo_utils/experience_maker.py): old/reference action log-probs,
values; k1 KL; compute_reward (-kl_coef * kl on every action token, + r on the last one); GAE
(gamma 0.99, lambda 0.95); global advantage whitening.
Training (openrlhf/trainer/ray/ppo_actor.py, ppo_critic.py): 2 epochs, one optimizer step each over
all 4 rollouts (token mean over the step): PolicyLoss (eps 0.2) - 0.01 * entropy; clipped
ValueLoss (0.5); clip_grad_norm 1.0; AdamW (lr 1e-3 constant, betas 0.9/0.95, eps 1e-8, no decay)
for actor and critic separately.
Writes tests/golden/ppo/{reference,critic}/ and tests/golden/ppo/update.json.

    python tools/golden/make_ppo_golden.py
"""
import json
import pathlib
import shutil

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, LlamaForCausalLM, LlamaForSequenceClassification

ROOT = pathlib.Path(__file__).resolve().parents[2]
ACTOR = ROOT / "tests" / "golden" / "models" / "llama_mha_f32"
OUT = ROOT / "tests" / "golden" / "ppo"

GAMMA, LAMBD, KL_COEF, EPS_CLIP, VALUE_CLIP, ENT_COEF, LR, MAX_NORM, EPOCHS = 0.99, 0.95, 0.05, 0.2, 0.5, 0.01, 1e-3, 1.0, 2

# (prompt ids, action ids, reward): ragged prompts and responses.
ROLLOUTS = [
    ([1, 17, 29, 41], [52, 60, 7, 2], 1.0),
    ([1, 99, 3], [120, 2], -0.5),
    ([1, 5, 6, 7, 8, 9], [200, 201, 202, 203, 204], 0.25),
    ([1, 250], [2], 2.0),
]


def write_model(model, src_cfg_dir, dst, arch):
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(dst / "model.safetensors"),
              metadata={"format": "pt"})
    cfg = json.loads((src_cfg_dir / "config.json").read_text())
    cfg["architectures"] = [arch]
    if arch.endswith("ForSequenceClassification"):
        cfg["num_labels"] = 1
        cfg["id2label"] = {"0": "LABEL_0"}
        cfg["label2id"] = {"LABEL_0": 0}
    (dst / "config.json").write_text(json.dumps(cfg, indent=2))


def action_logprobs_entropy(model, ids, n_act):
    logits = model(torch.tensor([ids])).logits[0].float()
    lp = torch.log_softmax(logits, dim=-1)
    pos = torch.arange(len(ids) - n_act - 1, len(ids) - 1)
    tgt = torch.tensor(ids[len(ids) - n_act:])
    p = lp[pos]
    return p.gather(1, tgt[:, None])[:, 0], -(p.exp() * p).sum(-1)


def values_of(critic, ids, n_act):
    h = critic.model(torch.tensor([ids])).last_hidden_state[0]
    v = critic.score(h)[:, 0]
    return v[len(ids) - n_act - 1:len(ids) - 1]


def main():
    torch.manual_seed(0)
    cfg = AutoConfig.from_pretrained(ACTOR)
    actor = LlamaForCausalLM.from_pretrained(ACTOR, dtype=torch.float32)
    reference = LlamaForCausalLM.from_pretrained(ACTOR, dtype=torch.float32)
    with torch.no_grad():
        for p in reference.parameters():
            p.add_(0.02 * torch.randn_like(p))
    torch.manual_seed(1)
    critic = LlamaForSequenceClassification(AutoConfig.from_pretrained(ACTOR, num_labels=1))
    critic.float()
    write_model(reference, ACTOR, OUT / "reference", "LlamaForCausalLM")
    write_model(critic, ACTOR, OUT / "critic", "LlamaForSequenceClassification")
    # Re-read what the C++ side reads (bit-identical f32).
    critic.load_state_dict(load_file(str(OUT / "critic" / "model.safetensors")))
    actor.eval(), reference.eval(), critic.eval()

    B = len(ROLLOUTS)
    T = max(len(a) for _, a, _ in ROLLOUTS)
    mask = torch.zeros(B, T)
    old_lp, ref_lp, old_v = torch.zeros(B, T), torch.zeros(B, T), torch.zeros(B, T)
    with torch.no_grad():
        for b, (p, a, _) in enumerate(ROLLOUTS):
            ids, n = p + a, len(a)
            mask[b, :n] = 1
            old_lp[b, :n] = action_logprobs_entropy(actor, ids, n)[0]
            ref_lp[b, :n] = action_logprobs_entropy(reference, ids, n)[0]
            old_v[b, :n] = values_of(critic, ids, n)
    # compute_approx_kl (k1), compute_reward: -kl_coef * kl everywhere, r on the last action token.
    kl = (old_lp - ref_lp) * mask
    rewards = -KL_COEF * kl
    for b, (_, a, r) in enumerate(ROLLOUTS):
        rewards[b, len(a) - 1] += r
    # get_advantages_and_returns (GAE), masked values/rewards.
    values, rew = old_v * mask, rewards * mask
    adv = torch.zeros(B, T)
    last = torch.zeros(B)
    for t in reversed(range(T)):
        nextv = values[:, t + 1] if t < T - 1 else torch.zeros(B)
        delta = rew[:, t] + GAMMA * nextv - values[:, t]
        last = delta + GAMMA * LAMBD * last
        adv[:, t] = last
    returns = adv + values
    # Global whitening over the action tokens.
    n_act = mask.sum()
    mean = (adv * mask).sum() / n_act
    var = ((adv - mean) ** 2 * mask).sum() / n_act
    adv_n = (adv - mean) * var.clamp(min=1e-8).rsqrt()

    a_opt = torch.optim.AdamW(actor.parameters(), lr=LR, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.0)
    c_opt = torch.optim.AdamW(critic.parameters(), lr=LR, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.0)
    losses = []
    for epoch in range(EPOCHS):
        lp, ent, v = torch.zeros(B, T), torch.zeros(B, T), torch.zeros(B, T)
        lp_rows, ent_rows, v_rows = [], [], []
        for b, (p, a, _) in enumerate(ROLLOUTS):
            x, e = action_logprobs_entropy(actor, p + a, len(a))
            pad = T - len(a)
            lp_rows.append(torch.cat([x, torch.zeros(pad)]))
            ent_rows.append(torch.cat([e, torch.zeros(pad)]))
            v_rows.append(torch.cat([values_of(critic, p + a, len(a)), torch.zeros(pad)]))
        lp, ent, v = torch.stack(lp_rows), torch.stack(ent_rows), torch.stack(v_rows)
        # PolicyLoss (token mean over the step).
        log_ratio = (lp - old_lp).clamp(-20.0, 20.0)
        ratio = log_ratio.exp()
        surr1 = ratio * adv_n
        surr2 = ratio.clamp(1 - EPS_CLIP, 1 + EPS_CLIP) * adv_n
        pg = (-torch.min(surr1, surr2) * mask).sum() / n_act
        ent_mean = (ent * mask).sum() / n_act
        actor_loss = pg - ENT_COEF * ent_mean
        a_opt.zero_grad()
        actor_loss.backward()
        torch.nn.utils.clip_grad_norm_(actor.parameters(), MAX_NORM)
        a_opt.step()
        # ValueLoss (clipped).
        v_clip = old_v + (v - old_v).clamp(-VALUE_CLIP, VALUE_CLIP)
        vl = 0.5 * (torch.max((v_clip - returns) ** 2, (v - returns) ** 2) * mask).sum() / n_act
        c_opt.zero_grad()
        vl.backward()
        torch.nn.utils.clip_grad_norm_(critic.parameters(), MAX_NORM)
        c_opt.step()
        losses.append({"policy_loss": pg.item(), "entropy": ent_mean.item(), "value_loss": vl.item()})

    def rows(x):
        return [[x[b, t].item() for t in range(int(mask[b].sum()))] for b in range(B)]

    names = {"actor": {k: v.detach() for k, v in actor.state_dict().items()},
             "critic": {k: v.detach() for k, v in critic.state_dict().items()}}
    out = {
        "rollouts": [{"prompt": p, "actions": a, "reward": r} for p, a, r in ROLLOUTS],
        "options": {"gamma": GAMMA, "lambd": LAMBD, "init_kl_coef": KL_COEF, "eps_clip": EPS_CLIP,
                    "value_clip": VALUE_CLIP, "entropy_coef": ENT_COEF, "learning_rate": LR, "max_norm": MAX_NORM,
                    "max_epochs": EPOCHS},
        "old_logprobs": rows(old_lp), "ref_logprobs": rows(ref_lp), "values": rows(old_v),
        "advantages": rows(adv_n), "returns": rows(returns), "epochs": losses,
        # A few updated tensors in full (the rest is covered by their sums).
        "weights": {f"{m}/{k}": t.flatten().tolist() for m in names for k, t in names[m].items()
                    if k in ("model.layers.0.self_attn.q_proj.weight", "score.weight",
                             "model.norm.weight")},
        "weight_sums": {f"{m}/{k}": t.double().abs().sum().item() for m in names for k, t in names[m].items()},
        "versions": {"torch": torch.__version__, "transformers": __import__("transformers").__version__},
    }
    (OUT / "update.json").write_text(json.dumps(out))
    print("wrote", OUT / "update.json", losses)


if __name__ == "__main__":
    main()
