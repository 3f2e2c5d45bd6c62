"""The VAE's adversarial term: hinge losses, which parameters each half reaches, its start step."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from scpdiff.training.adversarial import (AdversarialTerm, PatchDiscriminator, generator_loss,
                                          hinge_discriminator_loss)


def _setup(start=0):
    torch.manual_seed(0)
    gen = nn.Conv2d(3, 3, 3, padding=1)
    term = AdversarialTerm(PatchDiscriminator(8, layers=2), start=start, weight=0.5)
    real = torch.rand(2, 3, 32, 64) * 2 - 1
    fake = gen(torch.randn(2, 3, 32, 64))
    return gen, term, real, fake


def test_hinge_losses_by_hand():
    real, fake = torch.tensor([2.0, 0.5, -1.0]), torch.tensor([-2.0, 0.0, 0.5])
    # mean(max(0, 1 - real)) + mean(max(0, 1 + fake)) and -mean(fake)
    assert float(hinge_discriminator_loss(real, fake)) == pytest.approx((0 + 0.5 + 2) / 3 + (0 + 1 + 1.5) / 3)
    assert float(generator_loss(fake)) == pytest.approx(0.5)


def test_each_half_reaches_only_its_own_parameters():
    gen, term, real, fake = _setup()
    rec_loss = (fake - real).abs().mean()
    total = term(real, fake, rec_loss, gen.weight)
    d_params, g_params = list(term.discriminator.parameters()), list(gen.parameters())
    got = torch.autograd.grad(total, d_params + g_params, retain_graph=True)
    # independent references: the discriminator's hinge loss on a detached fake for D, and the
    # adaptive-weighted generator loss for the generator (D's weights fixed)
    disc = term.discriminator
    want_d = torch.autograd.grad(hinge_discriminator_loss(disc(real), disc(fake.detach())), d_params, retain_graph=True)
    g = generator_loss(disc(fake))
    gr = torch.autograd.grad(rec_loss, gen.weight, retain_graph=True)[0].norm()
    gg = torch.autograd.grad(g, gen.weight, retain_graph=True)[0].norm()
    want_g = torch.autograd.grad(0.5 * (gr / (gg + 1e-4)) * g, g_params, retain_graph=True)
    for a, b in zip(got, list(want_d) + list(want_g)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    assert all(float(a.abs().sum()) > 0 for a in got)


def test_term_starts_after_its_start_calls_and_counts_in_the_checkpoint():
    gen, term, real, fake = _setup(start=2)
    term.train()
    rec_loss = (fake - real).abs().mean()
    assert [float(term(real, fake, rec_loss, gen.weight).detach()) == 0.0 for _ in range(3)] == [True, True, False]
    assert int(term.state_dict()["calls"]) == 3  # resumed from a checkpoint, the count goes on


def test_discriminator_learns_to_tell_real_from_fake():
    torch.manual_seed(0)
    disc = PatchDiscriminator(8, layers=2)
    opt = torch.optim.Adam(disc.parameters(), lr=1e-3)
    real = torch.rand(4, 3, 32, 64) * 2 - 1
    fake = torch.nn.functional.avg_pool2d(real, 5, 1, 2)  # blurred: what the pixel losses give
    losses = []
    for _ in range(30):
        loss = hinge_discriminator_loss(disc(real), disc(fake))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[0] == pytest.approx(2.0, abs=0.3) and losses[-1] < 0.5 * losses[0]
