"""Issue 3 evaluation of the trained models against DESIGN targets S2, S4, S5 (and P5 context).

Runs on a prepared survey with simulator ground truth (default: the demo survey in the data
root) and never writes to the registry or products: every extra model is trained in memory.

    python bench/bench_models_eval.py --part s2   # probes vs a supervised CNN at the same steps
    python bench/bench_models_eval.py --part s4   # emulator metrics, PIT plot, Sersic-fit speed
    python bench/bench_models_eval.py --part s5   # calibration, reliability diagram

Each part merges its numbers into bench/results/models_eval.json and draws docs/img/eval_*.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results" / "models_eval.json"
IMG = ROOT / "docs" / "img"


def load_avg() -> float:
    return round(os.getloadavg()[0], 2)


def merge(part: str, data: dict[str, Any]) -> None:
    out = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {"benchmark": "models_eval"}
    data["load_average_before_after"] = data.get("load_average_before_after")
    out[part] = data
    out["machine"] = {"cpu_count": os.cpu_count(), "machine": platform.machine()}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2, default=float))
    print(json.dumps(data, indent=2, default=float)[:4000])


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# --------------------------------------------------------------------------------------- S2


def probe(features: np.ndarray, labels: np.ndarray, train: np.ndarray, test: np.ndarray) -> dict:
    """Standardised multinomial logistic regression; accuracy and macro recall on ``test``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, C=1.0))
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(features[train], labels[train])
    pred = clf.predict(features[test])
    return {
        "accuracy": float((pred == labels[test]).mean()),
        "macro_recall": float(balanced_accuracy_score(labels[test], pred)),
        "n_train": len(train),
        "fit_seconds": round(time.perf_counter() - t0, 2),
    }


def pooled_normalized(model_normalizer: Any, images: np.ndarray, factor: int = 4) -> np.ndarray:
    """asinh-normalised pixels (the models' own input scaling), mean-pooled factor x factor."""
    import torch
    import torch.nn.functional as F

    out = []
    with torch.inference_mode():
        for lo in range(0, len(images), 1024):
            x = model_normalizer(torch.from_numpy(np.ascontiguousarray(images[lo : lo + 1024])))
            out.append(F.avg_pool2d(x, factor).flatten(1).numpy())
    return np.concatenate(out)


def training_steps(registry: Any, version: Any) -> int:
    """Optimiser steps behind an encoder version: its own, plus the shipped encoder it started from."""
    from backend.modelling.general import general_card

    meta = version.meta
    steps = int(meta.get("training", {}).get("result", {}).get("steps", 0))
    parent = meta.get("parent") or ""
    if parent.startswith("general:"):
        steps += int(general_card(parent.split(":", 1)[1])["training"]["steps"])
    elif parent:
        steps += training_steps(registry, registry.get("encoder", parent))
    return steps


def run_s2(args: argparse.Namespace) -> None:
    import torch

    from backend.modelling import metrics
    from backend.modelling.common import load_model
    from backend.modelling.train import catalog_labels
    from backend.products import open_embeddings
    from backend.registry import ModelRegistry
    from backend.survey import Survey
    from models import (
        ArrayDataset,
        AugmentConfig,
        BackboneConfig,
        ImageClassifier,
        SimCLREncoder,
        TrainConfig,
        embed,
        fit,
        predict_classes,
        seed_everything,
    )
    from models.normalize import BandNormalizer, fit_normalization

    torch.set_num_threads(2)
    load0 = load_avg()
    survey = Survey.open(args.survey)
    images = np.asarray(survey.images[:])
    labels, classes = catalog_labels(survey, "true_class")
    train_rows, test_rows = metrics.stratified_split(labels, 0.2, seed=0)
    rows10 = metrics.subsample(train_rows, labels, 0.1, seed=0)
    registry = ModelRegistry()
    enc_v = registry.active(survey.name, "encoder")
    ae_v = registry.active(survey.name, "autoencoder")
    result: dict[str, Any] = {
        "survey": survey.name,
        "n_train_100": len(train_rows),
        "n_train_10": len(rows10),
        "n_test": len(test_rows),
        "classes": classes,
        "probes": {},
    }

    def add_probe(name: str, feats: np.ndarray) -> None:
        result["probes"][name] = {
            "dim": int(feats.shape[1]),
            "labels_10pct": probe(feats, labels, rows10, test_rows),
            "labels_100pct": probe(feats, labels, train_rows, test_rows),
        }
        print(name, result["probes"][name], flush=True)

    emb = np.asarray(open_embeddings(survey.name, "encoder", enc_v.version))
    add_probe(f"simclr_{enc_v.version}", emb)
    ae = load_model(ae_v)
    add_probe(f"autoencoder_{ae_v.version}", embed(ae, images, device="cpu", progress_bar=False))
    norm = fit_normalization(images, survey.bands, seed=0)
    pooled = pooled_normalized(BandNormalizer(norm), images)
    from sklearn.decomposition import PCA

    pca = PCA(128, random_state=0).fit(pooled[train_rows])
    add_probe("pixels_pca128", pca.transform(pooled))

    # Supervised CNN from scratch (same backbone), 100% of the training labels, as many optimiser
    # steps as the encoder had in all (its survey steps plus those of the encoder it started from).
    encoder_steps = training_steps(registry, enc_v)
    cnn_steps = args.cnn_steps or encoder_steps
    result["encoder_steps"] = encoder_steps
    for frac, rows in (("100pct", train_rows),) + ((("10pct", rows10),) if args.cnn10 else ()):
        seed_everything(0)
        counts = np.bincount(labels[rows], minlength=len(classes))
        cnn = ImageClassifier(
            survey.bands, classes, normalization=norm,
            class_weights=(counts.sum() / np.maximum(counts, 1) / len(classes)).tolist(),
        )  # fmt: skip
        cfg = TrainConfig(
            epochs=10_000, max_steps=cnn_steps, batch_size=args.cnn_batch, seed=0,
            device="cpu", progress_bar=True,
            checkpoint_path=f"{args.cnn_checkpoint}.{frac}.pt" if args.cnn_checkpoint else None,
            checkpoint_every_steps=100 if args.cnn_checkpoint else None,
            resume=bool(args.cnn_checkpoint),
        )  # fmt: skip
        res = fit(cnn, ArrayDataset(images, labels, rows=rows), cfg)
        probs = predict_classes(cnn, images[test_rows], device="cpu")["probs"]
        pred = probs.argmax(1)
        from sklearn.metrics import balanced_accuracy_score

        result[f"cnn_scratch_{frac}"] = {
            "accuracy": float((pred == labels[test_rows]).mean()),
            "macro_recall": float(balanced_accuracy_score(labels[test_rows], pred)),
            "n_train": len(rows),
            "batch_size": args.cnn_batch,
            "epochs": res.epochs,
            "steps": res.steps,
            "stopped": res.stopped,
            "seconds": round(res.seconds, 1),
        }
        print("cnn", frac, result[f"cnn_scratch_{frac}"], flush=True)

    if args.encoder_steps > 0:
        # A SimCLR encoder from scratch with a stride-4 stem (~2x cheaper per step).
        seed_everything(0)
        enc = SimCLREncoder(
            survey.bands,
            backbone=BackboneConfig(stem_stride=args.stem_stride),
            normalization=norm,
            augment=AugmentConfig.contrastive(survey.meta.pixel_scale),
        )
        data = ArrayDataset(images)
        block = max(1, min(64, len(data) // 50))
        tr, va = data.split(0.1, block_size=block, seed=0)
        cfg = TrainConfig(
            epochs=10_000, max_steps=args.encoder_steps, batch_size=256, seed=0, device="cpu",
            progress_bar=False,
        )  # fmt: skip
        res = fit(enc, tr, cfg, val=va)
        feats = embed(enc, images, device="cpu", progress_bar=False)
        name = f"simclr_stem{args.stem_stride}_{args.encoder_steps}steps"
        add_probe(name, feats)
        result["probes"][name]["training"] = {
            "epochs": res.epochs, "steps": res.steps, "seconds": round(res.seconds, 1),
            "val_loss": res.val_loss, "stopped": res.stopped,
        }  # fmt: skip
        if args.save_embeddings:
            np.save(args.save_embeddings, feats)

    best = max(result["probes"].items(), key=lambda kv: kv[1]["labels_10pct"]["accuracy"])
    cnn_acc = result["cnn_scratch_100pct"]["accuracy"]
    result["s2"] = {
        "best_probe": best[0],
        "best_probe_10pct_accuracy": best[1]["labels_10pct"]["accuracy"],
        "cnn_100pct_accuracy": cnn_acc,
        "met": bool(best[1]["labels_10pct"]["accuracy"] >= cnn_acc),
    }
    result["load_average_before_after"] = [load0, load_avg()]
    merge("s2", result)
    plot_s2(result)


def plot_s2(result: dict) -> None:
    plt = _plt()
    names = list(result["probes"])
    p10 = [result["probes"][n]["labels_10pct"]["accuracy"] for n in names]
    p100 = [result["probes"][n]["labels_100pct"]["accuracy"] for n in names]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    x = np.arange(len(names))
    ax.bar(x - 0.2, p10, 0.4, label=f"linear probe, 10% labels ({result['n_train_10']})")
    ax.bar(x + 0.2, p100, 0.4, label=f"linear probe, 100% labels ({result['n_train_100']})")
    for key, style in (("cnn_scratch_100pct", "-"), ("cnn_scratch_10pct", ":")):
        if key in result:
            r = result[key]
            ax.axhline(
                r["accuracy"], color="k", ls=style,
                label=f"CNN from scratch, {r['n_train']} labels, {r['seconds']:.0f} s",
            )  # fmt: skip
    ax.axhline(1 / len(result["classes"]), color="grey", ls="--", lw=0.8, label="chance")
    ax.set_xticks(x, names, fontsize=8)
    ax.set_ylabel(f"test accuracy ({result['n_test']} objects)")
    ax.set_ylim(0, 1.3)
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_title("S2: 7-class true_class, demo survey")
    ax.legend(fontsize=7, loc="upper center", ncol=2)
    fig.tight_layout()
    fig.savefig(IMG / "eval_s2_probes.png", dpi=110)


# --------------------------------------------------------------------------------------- S4


def run_s4(args: argparse.Namespace) -> None:
    import pandas as pd
    import torch

    from backend.modelling import metrics
    from backend.modelling.common import load_model
    from backend.modelling.train import _split
    from backend.registry import ModelRegistry
    from backend.survey import Survey
    from models import ArrayDataset, predict_targets

    torch.set_num_threads(2)
    load0 = load_avg()
    survey = Survey.open(args.survey)
    version = ModelRegistry().active(survey.name, "emulator")
    model = load_model(version)
    targets = list(model.targets)
    images = np.asarray(survey.images[:])
    y = survey.catalog[targets].apply(pd.to_numeric, errors="coerce").to_numpy(np.float32)
    _, held = _split(ArrayDataset(images, y), 0.15, 0)  # the split train_emulator held out
    rows = np.sort(held.rows)
    scores = metrics.emulation(model, images, y, rows, targets, "cpu")
    model = load_model(version)  # emulation() moved/folded a copy; start clean for timing
    # Per-object inference time: whole held-out set, batched as in production.
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        post = predict_targets(model, images[rows], device="cpu", progress_bar=False)
        times.append((time.perf_counter() - t0) / len(rows))
    emu_per_object = float(np.median(times))

    fit_res = sersic_fits(images, survey, rows[: args.n_fits])
    psf_res = sersic_psf_fits(images, survey, rows[: args.n_psf_fits]) if args.n_psf_fits else None
    result = {
        "survey": survey.name,
        "version": version.version,
        "metrics": scores,
        "emulator_seconds_per_object": emu_per_object,
        "emulator_objects_per_second": 1.0 / emu_per_object,
        "sersic_fit": fit_res,
        "speedup": fit_res["seconds_per_object"] / emu_per_object,
        "sersic_fit_psf": psf_res,
        "speedup_psf": psf_res["seconds_per_object"] / emu_per_object if psf_res else None,
    }
    # Emulator errors on the same objects the profile fit saw, for a like-for-like comparison.
    fitted = rows[: args.n_fits]
    j_n, j_r = targets.index("sersic_n"), targets.index("half_light_radius")
    sub = np.searchsorted(rows, fitted)
    result["emulator_on_fit_objects"] = {
        "sersic_n": metrics.regression(post["mean"][sub, j_n], y[fitted, j_n]),
        "half_light_radius": metrics.regression(post["mean"][sub, j_r], y[fitted, j_r]),
    }
    # Trivial baseline: predict the training-set median for every object (what a calibrated
    # but uninformative posterior would score); the emulator has to beat this, not just S4.
    train_rows = np.setdiff1d(np.arange(len(y)), rows)
    med = np.nanmedian(y[train_rows], axis=0)
    result["prior_median_baseline"] = {
        name: (metrics.photoz if name == "redshift" else metrics.regression)(
            np.full(len(rows), med[j]), y[rows, j]
        )
        for j, name in enumerate(targets)
    }
    result["load_average_before_after"] = [load0, load_avg()]
    merge("s4", result)
    plot_s4(result, post, y[rows], targets)


def sersic_fits(images: np.ndarray, survey: Any, rows: np.ndarray) -> dict:
    """Fit astropy Sersic2D (no PSF convolution) to r-band stamps, one TRF fit per object."""
    from astropy.modeling import fitting, models

    band = survey.bands.index("r")
    scale = float(survey.meta.pixel_scale)
    h, w = images.shape[-2:]
    yy, xx = np.mgrid[:h, :w]
    catalog = survey.catalog
    fitter = fitting.TRFLSQFitter()
    n_fit, r_fit, per = [], [], []
    failures = 0
    for row in rows:
        img = images[row, band].astype(np.float64)
        sky = np.median(np.concatenate([img[:4].ravel(), img[-4:].ravel()]))
        img = img - sky
        init = models.Sersic2D(
            amplitude=max(img[h // 2 - 2 : h // 2 + 3, w // 2 - 2 : w // 2 + 3].mean() / 5, 1e-6),
            r_eff=5.0, n=2.0, x_0=w / 2, y_0=h / 2, ellip=0.3, theta=0.0,
            bounds={"n": (0.3, 8.0), "r_eff": (0.3, 40.0), "ellip": (0.0, 0.95)},
        )  # fmt: skip
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                fitted = fitter(init, xx, yy, img, maxiter=200)
            except Exception:
                fitted, failures = init, failures + 1
        per.append(time.perf_counter() - t0)
        n_fit.append(float(fitted.n.value))
        # Sersic2D's r_eff is the semi-major axis; the catalogue's half-light radius is
        # circularised (GalSim's half_light_radius of the round profile, then sheared).
        r_fit.append(float(fitted.r_eff.value) * scale)
    true_n = catalog["sersic_n"].to_numpy()[rows]
    true_r = catalog["half_light_radius"].to_numpy()[rows]
    from backend.modelling.metrics import regression

    return {
        "method": "astropy.modeling Sersic2D, TRFLSQFitter, r band, no PSF, maxiter 200",
        "n_objects": len(rows),
        "failures": failures,
        "seconds_per_object": float(np.median(per)),
        "seconds_per_object_mean": float(np.mean(per)),
        "sersic_n": regression(np.asarray(n_fit), true_n),
        "half_light_radius_semi_major": regression(np.asarray(r_fit), true_r),
    }


def sersic_psf_fits(images: np.ndarray, survey: Any, rows: np.ndarray) -> dict:
    """Sersic2D convolved with a Gaussian PSF (catalogue FWHM), scipy least_squares (TRF).

    What a real profile fit has to do: every model evaluation is followed by an FFT
    convolution with the PSF, on a 2x oversampled grid.
    """
    from astropy.modeling.models import Sersic2D
    from scipy.optimize import least_squares
    from scipy.signal import fftconvolve

    band = survey.bands.index("r")
    scale = float(survey.meta.pixel_scale)
    h, w = images.shape[-2:]
    over = 2
    yy, xx = (np.mgrid[: h * over, : w * over] + 0.5) / over - 0.5
    fwhm = survey.catalog["psf_fwhm_r"].to_numpy()
    per, n_fit, r_fit = [], [], []
    for row in rows:
        img = images[row, band].astype(np.float64)
        img = img - np.median(np.concatenate([img[:4].ravel(), img[-4:].ravel()]))
        sigma = fwhm[row] / 2.3548 / scale * over
        k = np.arange(-int(4 * sigma) - 1, int(4 * sigma) + 2)
        g = np.exp(-0.5 * (k / sigma) ** 2)
        kernel = np.outer(g, g) / np.outer(g, g).sum()

        def model(p: np.ndarray, kernel: np.ndarray = kernel) -> np.ndarray:
            amp, r_eff, n, x0, y0, ellip, theta = p
            m = Sersic2D.evaluate(xx, yy, amp, r_eff, n, x0, y0, ellip, theta)
            m = fftconvolve(m, kernel, mode="same")
            return m.reshape(h, over, w, over).mean(axis=(1, 3))

        p0 = [max(img[h // 2 - 2 : h // 2 + 3, w // 2 - 2 : w // 2 + 3].mean() / 5, 1e-6),
              5.0, 2.0, w / 2, h / 2, 0.3, 0.0]  # fmt: skip
        lo = [0, 0.3, 0.3, 0, 0, 0, -np.pi]
        hi = [np.inf, 40, 8, w, h, 0.95, 2 * np.pi]
        t0 = time.perf_counter()
        sol = least_squares(lambda p, img=img: (model(p) - img).ravel(), p0, bounds=(lo, hi),
                            method="trf", max_nfev=200)  # fmt: skip
        per.append(time.perf_counter() - t0)
        n_fit.append(sol.x[2])
        r_fit.append(sol.x[1] * scale)
    from backend.modelling.metrics import regression

    cat = survey.catalog
    return {
        "method": "Sersic2D.evaluate on a 2x oversampled grid, FFT-convolved with the "
        "catalogue's Gaussian r-band PSF, scipy least_squares TRF, max_nfev 200",
        "n_objects": len(rows),
        "seconds_per_object": float(np.median(per)),
        "seconds_per_object_mean": float(np.mean(per)),
        "sersic_n": regression(np.asarray(n_fit), cat["sersic_n"].to_numpy()[rows]),
        "half_light_radius_semi_major": regression(
            np.asarray(r_fit), cat["half_light_radius"].to_numpy()[rows]
        ),
    }


def plot_s4(result: dict, post: dict, y: np.ndarray, targets: list[str]) -> None:
    plt = _plt()
    m = result["metrics"]
    fig, axes = plt.subplots(1, len(targets), figsize=(3.0 * len(targets), 2.8))
    for ax, name in zip(axes, targets, strict=True):
        dens = m[name]["pit_histogram"]
        edges = np.linspace(0, 1, len(dens) + 1)
        ax.bar(edges[:-1], dens, width=np.diff(edges), align="edge", edgecolor="k", alpha=0.7)
        ax.axhline(1.0, color="r", ls="--", lw=1)
        ax.set_title(f"{name}\nKS {m[name]['pit_ks']:.3f}, cov68 {m[name]['coverage_68']:.2f}",
                     fontsize=9)  # fmt: skip
        ax.set_xlabel("PIT")
        ax.set_ylim(0, max(2.0, max(dens) * 1.1))
    axes[0].set_ylabel("density")
    fig.suptitle(f"S4: emulator PIT on {m['n_held_out']} held-out objects", fontsize=10)
    fig.tight_layout()
    fig.savefig(IMG / "eval_pit.png", dpi=110)

    fig, axes = plt.subplots(1, len(targets), figsize=(3.0 * len(targets), 3.0))
    for j, (ax, name) in enumerate(zip(axes, targets, strict=True)):
        ax.scatter(y[:, j], post["mean"][:, j], s=2, alpha=0.4)
        lo, hi = np.nanpercentile(y[:, j], [0.5, 99.5])
        ax.plot([lo, hi], [lo, hi], "r-", lw=1)
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_xlabel(f"true {name}")
        ax.set_ylabel("emulator mean")
    fig.tight_layout()
    fig.savefig(IMG / "eval_emulator_scatter.png", dpi=110)


# --------------------------------------------------------------------------------------- S5


def run_s5(args: argparse.Namespace) -> None:
    import torch

    from backend.modelling import metrics
    from backend.modelling.common import load_model
    from backend.modelling.train import catalog_labels
    from backend.products import open_embeddings
    from backend.registry import ModelRegistry
    from backend.survey import Survey
    from models import fit_temperature, predict_classes, reliability_diagram

    load0 = load_avg()
    survey = Survey.open(args.survey)
    version = ModelRegistry().active(survey.name, "classifier")
    labels, _ = catalog_labels(survey, "true_class")
    _, held = metrics.stratified_split(labels, 0.2, seed=0)  # train_classifier's held-out set
    src = version.config["embedding_source"]["version"]
    emb = np.asarray(open_embeddings(survey.name, "encoder", src))[held]
    y = labels[held]
    model = load_model(version)
    t_stored = float(model.temperature)

    def probs(temperature: float, mc: int = 0) -> np.ndarray:
        model.set_temperature(temperature)
        return predict_classes(model, emb, mc_samples=mc, device="cpu")["probs"]

    p_raw = probs(1.0)
    p_cal = probs(t_stored)
    p_cal_mc = probs(t_stored, 30)
    # Honest variant: temperature fitted on one half of the held-out set, ECE on the other.
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(held))
    a, b = perm[: len(perm) // 2], perm[len(perm) // 2 :]
    model.set_temperature(1.0)
    with torch.no_grad():
        logits = model(torch.from_numpy(emb)).double().numpy()
    t_half = float(fit_temperature(logits[a], y[a]))
    p_half = probs(t_half)
    result = {
        "survey": survey.name,
        "version": version.version,
        "n_held_out": len(held),
        "stored": {k: version.metrics.get(k) for k in ("ece_uncalibrated", "ece", "accuracy")},
        "temperature": t_stored,
        "ece_uncalibrated": metrics.ece(p_raw, y),
        "ece_calibrated": metrics.ece(p_cal, y),
        "ece_calibrated_mc30": metrics.ece(p_cal_mc, y),
        "accuracy": float((p_cal_mc.argmax(1) == y).mean()),
        "split_half": {
            "temperature": t_half,
            "ece_uncalibrated": metrics.ece(p_raw[b], y[b]),
            "ece_calibrated": metrics.ece(p_half[b], y[b]),
            "n_eval": len(b),
        },
        "reliability_uncalibrated": {
            k: np.nan_to_num(v, nan=-1).tolist() for k, v in reliability_diagram(p_raw, y).items()
        },
        "reliability_calibrated_mc30": {
            k: np.nan_to_num(v, nan=-1).tolist()
            for k, v in reliability_diagram(p_cal_mc, y).items()
        },
    }
    result["met"] = bool(result["split_half"]["ece_calibrated"] <= 0.05)
    result["load_average_before_after"] = [load0, load_avg()]
    merge("s5", result)
    plot_s5(result)


def plot_s5(result: dict) -> None:
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.8), gridspec_kw={"width_ratios": [2, 1.2]})
    ax = axes[0]
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect")
    for key, label, mk in (
        ("reliability_uncalibrated", f"T=1, ECE {result['ece_uncalibrated']:.3f}", "o-"),
        (
            "reliability_calibrated_mc30",
            f"T={result['temperature']:.2f} + MC30, ECE {result['ece_calibrated_mc30']:.3f}",
            "s-",
        ),
    ):
        r = result[key]
        conf, acc, cnt = (np.asarray(r[k]) for k in ("confidence", "accuracy", "count"))
        ok = cnt > 0
        ax.plot(conf[ok], acc[ok], mk, ms=4, label=label)
    ax.set_xlabel("confidence (top-label)")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title(f"S5 reliability, {result['n_held_out']} held-out objects", fontsize=10)
    r = result["reliability_calibrated_mc30"]
    lower, upper, cnt = (np.asarray(r[k]) for k in ("bin_lower", "bin_upper", "count"))
    axes[1].bar(lower, cnt, width=upper - lower, align="edge", edgecolor="k")
    axes[1].set_xlabel("confidence")
    axes[1].set_ylabel("objects per bin")
    fig.tight_layout()
    fig.savefig(IMG / "eval_reliability.png", dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["s2", "s4", "s5"], required=True)
    parser.add_argument("--survey", default="demo")
    parser.add_argument(
        "--cnn-steps", type=int, default=0,
        help="optimiser steps of the supervised CNN (default: the active encoder's, pretraining included)",
    )  # fmt: skip
    parser.add_argument("--cnn-batch", type=int, default=256)
    parser.add_argument(
        "--cnn-checkpoint", default="",
        help="checkpoint the CNN every 100 steps to PATH.<fraction>.pt and resume from it (long runs)",
    )  # fmt: skip
    parser.add_argument("--cnn10", action="store_true", help="also a CNN on 10%% of the labels")
    parser.add_argument("--encoder-steps", type=int, default=0, help="also a SimCLR from scratch")
    parser.add_argument("--stem-stride", type=int, default=4)
    parser.add_argument("--save-embeddings", default="")
    parser.add_argument("--n-fits", type=int, default=50)
    parser.add_argument("--n-psf-fits", type=int, default=20)
    args = parser.parse_args()
    IMG.mkdir(parents=True, exist_ok=True)
    {"s2": run_s2, "s4": run_s4, "s5": run_s5}[args.part](args)


if __name__ == "__main__":
    main()
