#!/usr/bin/env python3
"""Goldens for the alignment losses / RL estimators (src/yak/train/rl_losses.*).

An independent torch transcription of OpenRLHF's formulas (OpenRLHF is NOT imported: it pulls
in deepspeed and ray). Every function below cites the OpenRLHF file + function it transcribes.
Sources read:
  * OpenRLHF/OpenRLHF @ 3c3be6234e0cb353e76bb8019947db9dfe99fca7 (2026-08-13, "Cleanup/simplicity
    tier1 2 (#1307)"): openrlhf/models/loss.py, openrlhf/models/utils.py,
    openrlhf/trainer/ppo_utils/experience_maker.py, openrlhf/trainer/ray/ppo_actor.py
  * KTOLoss and KDLoss were deleted from loss.py by 6a981c8c ("remove KTO, PRM, KD, ..."); they
    are transcribed from its parent 04898500df3501c9f3e70cf05afce54b553dc549.
DPO/IPO are additionally cross-checked against an independent closed form of TRL's
DPOTrainer.dpo_loss ("sigmoid" with label_smoothing, "ipo").

Everything runs in torch.float64 so the golden is exact to ~1e-15; grads are torch.autograd
d(loss)/d(input). Writes tests/golden/align/losses.json: a JSON list of cases
  {"name", "fn", "params", "inputs", "outputs", "grads"}
Masks are 0/1 ints, labels ints, "-inf" (string) marks a -inf logit.

    python tools/golden/make_align_goldens.py
"""
import json
import math
import pathlib

import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
DT = torch.float64
OUT = pathlib.Path(__file__).resolve().parents[2] / "tests" / "golden" / "align" / "losses.json"

B, T = 3, 5
# Ragged, right-padded action masks (response tokens first, then padding), as OpenRLHF builds them.
MASK = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 0, 0, 0]], dtype=DT)
# Same, with a fully-masked row (exercises aggregate_loss's seq_mask in sequence-mean mode).
MASK_EMPTY_ROW = torch.tensor([[1, 1, 1, 1, 0], [0, 0, 0, 0, 0], [1, 1, 1, 0, 0]], dtype=DT)


# ----------------------------------------------------------------------------------------------
# OpenRLHF transcriptions
# ----------------------------------------------------------------------------------------------

def masked_mean(tensor, mask, dim=None):
    # openrlhf/models/utils.py: masked_mean
    if mask is None:
        return tensor.mean(dim=dim)
    return (tensor * mask).sum(dim=dim) / mask.sum(dim=dim)


def aggregate_loss(loss, loss_mask, token_level_loss=True):
    # openrlhf/models/loss.py: aggregate_loss (dp_size=1, batch_num_tokens=None,
    # global_batch_size=None, i.e. the single-process defaults)
    if token_level_loss:
        return masked_mean(loss, loss_mask, dim=None)
    token_counts = loss_mask.sum(dim=-1)
    seq_loss = (loss * loss_mask).sum(dim=-1) / (token_counts + 1e-8)  # NB: +1e-8, not clamp
    seq_mask = (token_counts > 0).to(loss.dtype)  # fully-masked rows excluded
    return masked_mean(seq_loss, seq_mask, dim=None)


def policy_loss(log_probs, old_log_probs, advantages, action_mask, clip_eps_low=0.2,
                clip_eps_high=0.2, dual_clip=None, token_level_loss=True):
    # openrlhf/models/loss.py: PolicyLoss.forward, policy_loss_type="ppo",
    # enable_vllm_is_correction=False
    raw_policy_log_ratio = log_probs - old_log_probs
    policy_log_ratio = raw_policy_log_ratio.clamp(min=-20.0, max=20.0)
    ratio = policy_log_ratio.exp()
    surr1 = ratio * advantages
    surr2 = ratio.clamp(1 - clip_eps_low, 1 + clip_eps_high) * advantages
    if dual_clip is None:
        loss = -torch.min(surr1, surr2)
    else:
        clip1 = torch.min(surr1, surr2)
        clip2 = torch.max(clip1, dual_clip * advantages)
        loss = -torch.where(advantages < 0, clip2, clip1)
    loss = aggregate_loss(loss, action_mask, token_level_loss)
    clip_ratio = masked_mean(torch.lt(surr2, surr1).to(DT), action_mask, dim=None)
    ppo_kl = masked_mean(-raw_policy_log_ratio.detach(), action_mask, dim=None)
    return {"loss": loss, "clip_ratio": clip_ratio, "ppo_kl": ppo_kl}


def value_loss(values, old_values, returns, action_mask, clip_eps=None, token_level_loss=True):
    # openrlhf/models/loss.py: ValueLoss.forward
    if clip_eps is not None:
        values_clipped = old_values + (values - old_values).clamp(-clip_eps, clip_eps)
        surr1 = (values_clipped - returns) ** 2
        surr2 = (values - returns) ** 2
        loss = torch.max(surr1, surr2)
    else:
        loss = (values - returns) ** 2
    loss = aggregate_loss(loss, action_mask, token_level_loss)
    return {"loss": 0.5 * loss}


def pairwise_loss(chosen_reward, reject_reward, margin=None):
    # openrlhf/models/loss.py: PairWiseLoss.forward
    if margin is not None:
        loss = -F.logsigmoid(chosen_reward - reject_reward - margin)
    else:
        loss = -F.logsigmoid(chosen_reward - reject_reward)
    return {"loss": loss.mean()}


def logexp_loss(chosen_reward, reject_reward):
    # openrlhf/models/loss.py: LogExpLoss.forward (margin argument is ignored)
    return {"loss": torch.log(1 + torch.exp(reject_reward - chosen_reward)).mean()}


def dpo_loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps,
             reference_rejected_logps, beta, label_smoothing=0.0, ipo=False):
    # openrlhf/models/loss.py: DPOLoss.forward
    pi_logratios = policy_chosen_logps - policy_rejected_logps
    ref_logratios = reference_chosen_logps - reference_rejected_logps
    logits = pi_logratios - ref_logratios
    if ipo:
        losses = (logits - 1 / (2 * beta)) ** 2
    else:
        losses = (-F.logsigmoid(beta * logits) * (1 - label_smoothing)
                  - F.logsigmoid(-beta * logits) * label_smoothing)
    loss = losses.mean()
    chosen_rewards = beta * (policy_chosen_logps - reference_chosen_logps).detach()
    rejected_rewards = beta * (policy_rejected_logps - reference_rejected_logps).detach()
    return {"loss": loss, "chosen_rewards": chosen_rewards, "rejected_rewards": rejected_rewards}


def trl_dpo_crosscheck(pc, pr, rc, rr, beta, label_smoothing, ipo):
    # Independent closed form of TRL DPOTrainer.dpo_loss (loss_type "sigmoid" / "ipo"):
    # sigmoid: -(1-ls) log sigma(beta*h) - ls log sigma(-beta*h); ipo: (h - 1/(2 beta))^2,
    # h = (pc - rc) - (pr - rr). Written with log1p(exp(.)) instead of logsigmoid.
    h = (pc - rc) - (pr - rr)
    if ipo:
        return ((h - 1 / (2 * beta)) ** 2).mean()
    sp = lambda x: torch.log1p(torch.exp(-x))  # -log sigma(x)
    return ((1 - label_smoothing) * sp(beta * h) + label_smoothing * sp(-beta * h)).mean()


def kto_loss(policy_chosen_logps, policy_rejected_logps, policy_KL_logps, reference_chosen_logps,
             reference_rejected_logps, reference_KL_logps, beta, desirable_weight,
             undesirable_weight, world_size=1):
    # openrlhf/models/loss.py @04898500: KTOLoss.forward (the "uneven sampling" KTO used by
    # KTOTrainer). The dist.all_reduce(SUM) over world_size ranks followed by /world_size is the
    # identity for world_size=1.
    KL = (policy_KL_logps - reference_KL_logps).mean().detach()
    # dist.all_reduce(KL, SUM) over world_size identical ranks, then / world_size: identity here.
    KL = KL.clamp(min=0)
    chosen_logratios = policy_chosen_logps - reference_chosen_logps
    chosen_losses = 1 - F.sigmoid(beta * (chosen_logratios - KL))
    chosen_rewards = beta * chosen_logratios.detach()
    rejected_logratios = policy_rejected_logps - reference_rejected_logps
    rejected_losses = 1 - F.sigmoid(beta * (KL - rejected_logratios))
    rejected_rewards = beta * rejected_logratios.detach()
    losses = torch.cat((desirable_weight * chosen_losses, undesirable_weight * rejected_losses), 0).mean()
    return {"loss": losses, "chosen_rewards": chosen_rewards, "rejected_rewards": rejected_rewards, "KL": KL}


def kd_loss(logits, teacher_logits, label):
    # openrlhf/models/loss.py @04898500: KDLoss.forward. OpenRLHF forces dtype=torch.float32 in
    # softmax/log_softmax; here float64 throughout (exact reference). No shift: label[b,t] masks
    # logits[b,t].
    teacher_probs = F.softmax(teacher_logits, dim=-1, dtype=DT)
    inf_mask = torch.isinf(logits)
    logprobs = F.log_softmax(logits, dim=-1, dtype=DT)
    prod_probs = torch.masked_fill(teacher_probs * logprobs, inf_mask, 0)
    x = torch.sum(prod_probs, dim=-1).view(-1)
    mask = (label != -100).int()
    distil_loss = -torch.sum(x * mask.view(-1), dim=0) / torch.sum(mask.view(-1), dim=0)
    return {"loss": distil_loss}


def compute_approx_kl(log_probs, log_probs_base, kl_estimator="k1"):
    # openrlhf/models/utils.py: compute_approx_kl (no mask argument at this commit; the clamp to
    # [-10, 10] is applied for every estimator)
    log_ratio = log_probs - log_probs_base
    if kl_estimator == "k1":
        pass
    elif kl_estimator == "k2":
        log_ratio = log_ratio ** 2 / 2.0
    elif kl_estimator == "k3":
        log_ratio = (-log_ratio).exp() - 1 + log_ratio
    else:
        raise ValueError(kl_estimator)
    return log_ratio.clamp(min=-10, max=10)


def compute_reward(r, kl_coef, kl, action_mask, reward_clip_range=None):
    # openrlhf/models/utils.py: compute_reward
    if kl_coef <= 0.0:
        kl_coef = 0.0
    if reward_clip_range:
        r = r.clamp(min=reward_clip_range[0], max=reward_clip_range[1])
    kl_reward = -kl_coef * kl
    eos_indices = action_mask.size(1) - 1 - action_mask.long().fliplr().argmax(dim=1, keepdim=True)
    last_reward = torch.zeros_like(kl).scatter_(dim=1, index=eos_indices, src=r.unsqueeze(1).to(kl.dtype))
    return last_reward + kl_reward


@torch.no_grad()
def get_advantages_and_returns(values, rewards, action_mask, gamma, lambd):
    # openrlhf/trainer/ppo_utils/experience_maker.py: get_advantages_and_returns
    lastgaelam = 0
    advantages_reversed = []
    response_length = rewards.size(1)
    if action_mask is not None:
        values = action_mask * values
        rewards = action_mask * rewards
    for t in reversed(range(response_length)):
        nextvalues = values[:, t + 1] if t < response_length - 1 else 0.0
        delta = rewards[:, t] + gamma * nextvalues - values[:, t]
        lastgaelam = delta + gamma * lambd * lastgaelam
        advantages_reversed.append(lastgaelam)
    advantages = torch.stack(advantages_reversed[::-1], dim=1)
    returns = advantages + values
    return advantages, returns


@torch.no_grad()
def get_cumulative_returns(rewards, action_mask, gamma):
    # openrlhf/trainer/ppo_utils/experience_maker.py: get_cumulative_returns
    response_length = rewards.size(1)
    returns = torch.zeros_like(rewards)
    cumulative_return = torch.zeros(rewards.size(0), dtype=rewards.dtype)
    if action_mask is not None:
        rewards = action_mask * rewards
    for t in reversed(range(response_length)):
        cumulative_return = rewards[:, t] + gamma * cumulative_return
        returns[:, t] = cumulative_return
    return returns


def shape_group_rewards(rewards, n, estimator):
    # openrlhf/trainer/ppo_utils/experience_maker.py: compute_advantages_and_returns,
    # "Reward shaping (baseline subtraction)" block. torch.std is unbiased (n-1).
    rewards = rewards.reshape(-1, n)
    group_reward_std = rewards.std(-1, keepdim=True).repeat(1, n).reshape(-1)
    if estimator == "rloo":
        baseline = (rewards.sum(-1, keepdim=True) - rewards) / (n - 1)
        rewards = rewards - baseline
    elif estimator in ["reinforce_baseline", "dr_grpo"]:
        rewards = rewards - rewards.mean(-1, keepdim=True)
    elif estimator == "group_norm":
        rewards = (rewards - rewards.mean(-1, keepdim=True)) / (rewards.std(-1, keepdim=True) + 1e-9)
    return rewards.reshape(-1), group_reward_std


def normalize_advantages(advantages, action_mask, no_std_norm=False):
    # openrlhf/trainer/ppo_utils/experience_maker.py: compute_advantages_and_returns,
    # "Normalize advantages across all experiences" (estimators gae, reinforce,
    # reinforce_baseline only). Global over all tokens of all experiences; biased variance.
    all_advantages = advantages.flatten()
    all_action_masks = action_mask.flatten()
    num_actions = all_action_masks.sum()
    mean = (all_advantages * all_action_masks).sum() / num_actions
    if not no_std_norm:
        var = ((all_advantages - mean).pow(2) * all_action_masks).sum() / num_actions
        rstd = var.clamp(min=1e-8).rsqrt()
    else:
        rstd = 1
    return (advantages - mean) * rstd, mean, rstd


def masked_normalize(tensor, mask, dim=1, eps=1e-8):
    # openrlhf/models/utils.py: masked_normalize (OpenRLHF's only "whiten"; per row, biased var)
    mask_sum = mask.sum(dim=dim, keepdim=True).clamp(min=1)
    mean = (tensor * mask).sum(dim=dim, keepdim=True) / mask_sum
    mean_centered = (tensor - mean) * mask
    var = (mean_centered ** 2).sum(dim=dim, keepdim=True) / mask_sum
    return mean_centered * var.clamp(min=eps).rsqrt()


# ----------------------------------------------------------------------------------------------
# case assembly
# ----------------------------------------------------------------------------------------------

def enc(x):
    if isinstance(x, torch.Tensor):
        x = x.detach()
        if x.dtype in (torch.int64, torch.int32, torch.bool):
            return x.tolist()
        return enc(x.tolist())
    if isinstance(x, list):
        return [enc(v) for v in x]
    if isinstance(x, float):
        if math.isinf(x):
            return "-inf" if x < 0 else "inf"
        assert not math.isnan(x)
        return x
    return x


CASES = []


def add(name, fn, params, inputs, compute, grad_wrt=(), loss_key="loss"):
    """inputs: dict of tensors. compute(**tensors) -> dict of outputs. grads of outputs[loss_key]
    w.r.t. the inputs named in grad_wrt."""
    ins = {}
    for k, v in inputs.items():
        if isinstance(v, torch.Tensor) and v.is_floating_point():
            v = v.detach().clone().requires_grad_(k in grad_wrt)
        ins[k] = v
    out = compute(**ins)
    grads = {}
    if grad_wrt:
        g = torch.autograd.grad(out[loss_key], [ins[k] for k in grad_wrt], allow_unused=True, materialize_grads=True)
        grads = {k: enc(gi) for k, gi in zip(grad_wrt, g)}
    for k, v in out.items():
        if isinstance(v, torch.Tensor):
            assert torch.isfinite(v).all(), (name, k)
    CASES.append({
        "name": name,
        "fn": fn,
        "params": params,
        "inputs": {k: enc(v) for k, v in inputs.items()},
        "outputs": {k: enc(v) for k, v in out.items()},
        "grads": grads,
    })


def main():
    g = torch.Generator().manual_seed(1234)
    rn = lambda *s, scale=1.0: torch.randn(*s, generator=g, dtype=DT) * scale

    # 1. policy_loss ------------------------------------------------------------------------
    old_lp = -torch.rand(B, T, generator=g, dtype=DT) * 3 - 0.1
    # log-ratios spread over [-1.5, 1.5]: many clipped tokens on both sides, and ratio > 3 for
    # dual-clip (ln 3 = 1.0986).
    dlr = torch.tensor([[0.05, -0.6, 1.3, 0.15, -1.5],
                        [1.4, -0.1, 0.35, 0.9, -0.7],
                        [-0.25, 1.2, 0.5, -1.1, 0.02]], dtype=DT)
    lp = old_lp + dlr
    adv = torch.tensor([[0.8, -1.2, -0.7, 0.3, 1.1],
                        [-0.9, 0.6, -0.4, 1.5, -0.2],
                        [-1.3, 0.4, 0.9, -0.5, 0.7]], dtype=DT)
    pl_inputs = {"log_probs": lp, "old_log_probs": old_lp, "advantages": adv, "action_mask": MASK}
    for name, p in [
        ("ppo_sym0.2_token", dict(clip_eps_low=0.2, clip_eps_high=0.2, dual_clip=None, token_level_loss=True)),
        ("ppo_sym0.2_seqmean", dict(clip_eps_low=0.2, clip_eps_high=0.2, dual_clip=None, token_level_loss=False)),
        ("ppo_asym0.2_0.28_token", dict(clip_eps_low=0.2, clip_eps_high=0.28, dual_clip=None, token_level_loss=True)),
        ("ppo_asym0.2_0.28_seqmean", dict(clip_eps_low=0.2, clip_eps_high=0.28, dual_clip=None, token_level_loss=False)),
        ("ppo_dualclip3_token", dict(clip_eps_low=0.2, clip_eps_high=0.2, dual_clip=3.0, token_level_loss=True)),
        ("ppo_dualclip3_seqmean", dict(clip_eps_low=0.2, clip_eps_high=0.28, dual_clip=3.0, token_level_loss=False)),
    ]:
        add(name, "policy_loss", p, pl_inputs,
            lambda p=p, **kw: policy_loss(**kw, **p), grad_wrt=("log_probs",))
    # fully-masked row: sequence mode drops it from the mean, token mode just has fewer tokens
    for tl in (True, False):
        add(f"ppo_empty_row_{'token' if tl else 'seqmean'}", "policy_loss",
            dict(clip_eps_low=0.2, clip_eps_high=0.28, dual_clip=3.0, token_level_loss=tl),
            {**pl_inputs, "action_mask": MASK_EMPTY_ROW},
            lambda tl=tl, **kw: policy_loss(**kw, clip_eps_low=0.2, clip_eps_high=0.28, dual_clip=3.0,
                                            token_level_loss=tl), grad_wrt=("log_probs",))
    # log-ratio clamp to [-20, 20] before exp: +25 with negative advantage (unclipped branch is
    # min -> exp(20)*A; grad 0 because the clamp is saturated), -25 with positive advantage.
    lp_big = lp.clone()
    lp_big[0, 1] = old_lp[0, 1] + 25.0   # adv -1.2
    lp_big[1, 1] = old_lp[1, 1] - 25.0   # adv +0.6
    add("ppo_logratio_clamp20_token", "policy_loss",
        dict(clip_eps_low=0.2, clip_eps_high=0.2, dual_clip=None, token_level_loss=True),
        {**pl_inputs, "log_probs": lp_big},
        lambda **kw: policy_loss(**kw, clip_eps_low=0.2, clip_eps_high=0.2, dual_clip=None,
                                 token_level_loss=True), grad_wrt=("log_probs",))

    # 2. value_loss -------------------------------------------------------------------------
    old_v = rn(B, T)
    vals = old_v + torch.tensor([[0.05, -0.5, 0.3, -0.1, 0.6],
                                 [0.4, -0.15, -0.35, 0.1, 0.25],
                                 [-0.45, 0.12, 0.3, -0.3, 0.5]], dtype=DT)
    rets = rn(B, T)
    for ce in (0.2, None):
        for tl in (True, False):
            p = dict(clip_eps=ce, token_level_loss=tl)
            add(f"value_clip{ce}_{'token' if tl else 'seqmean'}", "value_loss", p,
                {"values": vals, "old_values": old_v, "returns": rets, "action_mask": MASK},
                lambda p=p, **kw: value_loss(**kw, **p), grad_wrt=("values",))
    add("value_clip0.2_seqmean_empty_row", "value_loss", dict(clip_eps=0.2, token_level_loss=False),
        {"values": vals, "old_values": old_v, "returns": rets, "action_mask": MASK_EMPTY_ROW},
        lambda **kw: value_loss(**kw, clip_eps=0.2, token_level_loss=False), grad_wrt=("values",))

    # 3. pairwise / logexp ------------------------------------------------------------------
    N = 6
    ch = rn(N, scale=1.5)
    rj = rn(N, scale=1.5)
    margin = torch.rand(N, generator=g, dtype=DT)
    add("pairwise_nomargin", "pairwise_loss", {},
        {"chosen_reward": ch, "reject_reward": rj}, pairwise_loss,
        grad_wrt=("chosen_reward", "reject_reward"))
    add("pairwise_margin", "pairwise_loss", {},
        {"chosen_reward": ch, "reject_reward": rj, "margin": margin}, pairwise_loss,
        grad_wrt=("chosen_reward", "reject_reward"))
    add("logexp", "logexp_loss", {}, {"chosen_reward": ch, "reject_reward": rj}, logexp_loss,
        grad_wrt=("chosen_reward", "reject_reward"))

    # 4. dpo ----------------------------------------------------------------------------------
    NB = 4
    pc = -rn(NB).abs() * 20 - 5
    pr = -rn(NB).abs() * 20 - 5
    rc = pc + rn(NB, scale=2.0)
    rr = pr + rn(NB, scale=2.0)
    dpo_in = {"policy_chosen_logps": pc, "policy_rejected_logps": pr,
              "reference_chosen_logps": rc, "reference_rejected_logps": rr}
    for name, p in [("dpo_beta0.1", dict(beta=0.1, label_smoothing=0.0, ipo=False)),
                    ("cdpo_beta0.1_ls0.1", dict(beta=0.1, label_smoothing=0.1, ipo=False)),
                    ("ipo_beta0.1", dict(beta=0.1, label_smoothing=0.0, ipo=True)),
                    ("dpo_beta0.5", dict(beta=0.5, label_smoothing=0.0, ipo=False))]:
        add(name, "dpo_loss", p, dpo_in, lambda p=p, **kw: dpo_loss(**kw, **p),
            grad_wrt=("policy_chosen_logps", "policy_rejected_logps"))
        ref = trl_dpo_crosscheck(pc, pr, rc, rr, p["beta"], p["label_smoothing"], p["ipo"])
        got = CASES[-1]["outputs"]["loss"]
        assert abs(ref.item() - got) <= 1e-12 * max(1.0, abs(got)), (name, ref.item(), got)

    # 5. kto ----------------------------------------------------------------------------------
    NC, NR, NK = 3, 2, 5
    kto_base = {
        "policy_chosen_logps": -rn(NC).abs() * 10 - 2,
        "policy_rejected_logps": -rn(NR).abs() * 10 - 2,
        "policy_KL_logps": -rn(NK).abs() * 10 - 2,
    }
    kto_base["reference_chosen_logps"] = kto_base["policy_chosen_logps"] + rn(NC, scale=1.5)
    kto_base["reference_rejected_logps"] = kto_base["policy_rejected_logps"] + rn(NR, scale=1.5)
    # KL > 0 case: reference KL logps below policy on average
    kto_base["reference_KL_logps"] = kto_base["policy_KL_logps"] - 0.4 + rn(NK, scale=0.5)
    kto_p = dict(beta=0.1, desirable_weight=1.0, undesirable_weight=1.0)
    kto_grad = ("policy_chosen_logps", "policy_rejected_logps", "policy_KL_logps")
    add("kto_beta0.1_KLpos", "kto_loss", kto_p, kto_base,
        lambda **kw: kto_loss(**kw, **kto_p), grad_wrt=kto_grad)
    kto_p2 = dict(beta=0.5, desirable_weight=1.33, undesirable_weight=0.8)
    add("kto_beta0.5_weighted_KLpos", "kto_loss", kto_p2, kto_base,
        lambda **kw: kto_loss(**kw, **kto_p2), grad_wrt=kto_grad)
    kto_neg = dict(kto_base)
    kto_neg["reference_KL_logps"] = kto_base["policy_KL_logps"] + 0.7 + rn(NK, scale=0.3)  # mean<0 -> clamp 0
    add("kto_beta0.1_KLclamped0", "kto_loss", kto_p, kto_neg,
        lambda **kw: kto_loss(**kw, **kto_p), grad_wrt=kto_grad)

    # 6. kd -----------------------------------------------------------------------------------
    V = 7
    logits = rn(B, T, V, scale=2.0)
    t_logits = rn(B, T, V, scale=2.0)
    label = torch.randint(0, V, (B, T), generator=g)
    label[1, 3:] = -100
    label[2, 0] = -100
    label[2, 2:] = -100
    add("kd_basic", "kd_loss", {}, {"logits": logits, "teacher_logits": t_logits, "label": label},
        kd_loss, grad_wrt=("logits",))
    logits_inf = logits.clone()
    logits_inf[0, 2, 4] = -math.inf  # vocab-masked student logit: inf_mask zeroes its product
    logits_inf[1, 0, 0] = -math.inf
    add("kd_student_neg_inf", "kd_loss", {}, {"logits": logits_inf, "teacher_logits": t_logits, "label": label},
        kd_loss, grad_wrt=("logits",))

    # 7. approx_kl ------------------------------------------------------------------------------
    lpb = -torch.rand(B, T, generator=g, dtype=DT) * 3 - 0.1
    kdiff = torch.tensor([[0.3, -0.5, 0.05, 1.2, -0.9],
                          [-4.0, 0.7, -0.2, 12.0, -3.0],   # -4 -> k3 = e^4-5 > 10 (clamped); 12 -> k1/k2 clamped (masked pos)
                          [0.4, -12.5, 0.8, 0.1, 5.0]], dtype=DT)  # -12.5 -> k1 clamped to -10 (grad 0)
    lpk = lpb + kdiff
    for est in ("k1", "k2", "k3"):
        def f(log_probs, log_probs_base, action_mask, est=est):
            kl = compute_approx_kl(log_probs, log_probs_base, est)
            # how OpenRLHF consumes it: ppo_actor.py use_loss -> aggregate_loss(kl, action_mask)
            # (token-level); experience_maker.py -> masked_mean(kl, action_mask, dim=-1) as info
            return {"kl": kl, "kl_loss": aggregate_loss(kl, action_mask, True),
                    "kl_mean_per_seq": masked_mean(kl, action_mask, dim=-1)}
        add(f"approx_kl_{est}", "approx_kl", {"kl_estimator": est},
            {"log_probs": lpk, "log_probs_base": lpb, "action_mask": MASK}, f,
            grad_wrt=("log_probs",), loss_key="kl_loss")

    # 8. gae ----------------------------------------------------------------------------------
    gv = rn(B, T)
    gr = rn(B, T, scale=0.5)
    for gamma, lambd in ((1.0, 0.95), (0.99, 1.0), (0.9, 0.8)):
        add(f"gae_g{gamma}_l{lambd}", "gae", {"gamma": gamma, "lambd": lambd},
            {"values": gv, "rewards": gr, "action_mask": MASK},
            lambda gamma=gamma, lambd=lambd, **kw: dict(zip(("advantages", "returns"),
                                                             get_advantages_and_returns(**kw, gamma=gamma, lambd=lambd))))

    # 9. cumulative returns ------------------------------------------------------------------
    for gamma in (1.0, 0.9):
        add(f"cumret_g{gamma}", "cumulative_returns", {"gamma": gamma},
            {"rewards": gr, "action_mask": MASK},
            lambda gamma=gamma, **kw: {"returns": get_cumulative_returns(**kw, gamma=gamma)})

    # 10. group estimators ------------------------------------------------------------------
    n = 4
    grp_r = torch.tensor([1.0, 0.0, 0.0, 1.0,      # binary rewards
                          0.5, 0.5, 0.5, 0.5,      # constant group: std 0
                          0.3, -1.2, 2.1, 0.7], dtype=DT)
    G = grp_r.numel()
    gmask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]] * 3, dtype=DT)
    gkl = (rn(G, T, scale=0.05)).abs()
    kl_coef = 0.01
    for est in ("rloo", "reinforce_baseline", "group_norm", "dr_grpo", "reinforce"):
        def f(rewards, action_mask, kl, est=est):
            shaped, gstd = shape_group_rewards(rewards, n, est)
            tok_r = compute_reward(shaped, kl_coef, kl, action_mask)
            ret = get_cumulative_returns(tok_r, action_mask, 1.0)  # gamma forced to 1 for group estimators
            out = {"shaped_rewards": shaped, "group_reward_std": gstd, "token_rewards": tok_r,
                   "returns": ret}
            if est in ("reinforce", "reinforce_baseline"):
                out["advantages"] = normalize_advantages(ret, action_mask)[0]
            else:
                out["advantages"] = ret
            return out
        add(f"group_{est}", est, {"n_samples_per_prompt": n, "kl_coef": kl_coef, "gamma": 1.0},
            {"rewards": grp_r, "action_mask": gmask, "kl": gkl}, f)

    # 11. whiten / advantages_norm -----------------------------------------------------------
    wa = rn(B, T, scale=2.0) + 0.5
    add("whiten_masked_normalize", "whiten", {"dim": 1, "eps": 1e-8},
        {"tensor": wa, "action_mask": MASK},
        lambda tensor, action_mask: {"whitened": masked_normalize(tensor, action_mask, 1, 1e-8)})
    wc = wa.clone()
    wc[2, :2] = 0.75  # a constant row -> var 0 -> clamp(eps) -> centered zeros
    add("whiten_const_row", "whiten", {"dim": 1, "eps": 1e-8},
        {"tensor": wc, "action_mask": MASK},
        lambda tensor, action_mask: {"whitened": masked_normalize(tensor, action_mask, 1, 1e-8)})
    for nsn in (False, True):
        def f(advantages, action_mask, nsn=nsn):
            a, mean, rstd = normalize_advantages(advantages, action_mask, nsn)
            return {"advantages": a, "mean": mean, "rstd": torch.as_tensor(rstd, dtype=DT)}
        add(f"advantages_norm{'_no_std' if nsn else ''}", "advantages_norm",
            {"no_std_norm": nsn, "eps": 1e-8}, {"advantages": wa, "action_mask": MASK}, f)

    # 12. kl_reward -----------------------------------------------------------------------------
    kr_r = torch.tensor([1.7, -0.4, -2.5], dtype=DT)
    kr_kl = rn(B, T, scale=0.3)
    for name, p in [("kl_reward_coef0.05", dict(kl_coef=0.05, reward_clip_range=None)),
                    ("kl_reward_coef0.05_clip1", dict(kl_coef=0.05, reward_clip_range=[-1.0, 1.0])),
                    ("kl_reward_coef_neg", dict(kl_coef=-0.1, reward_clip_range=None))]:
        add(name, "kl_reward", p, {"r": kr_r, "kl": kr_kl, "action_mask": MASK},
            lambda r, kl, action_mask, p=p: {"rewards": compute_reward(r, p["kl_coef"], kl, action_mask,
                                                                       p["reward_clip_range"])})

    OUT.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(CASES, indent=None, separators=(",", ":"))
    OUT.write_text(text + "\n")
    print(f"wrote {OUT} ({len(CASES)} cases, {len(text)} bytes)")


if __name__ == "__main__":
    main()
