"""The glossary's entries (data only): what :mod:`app.ui.glossary` reads. Append a new term here, in plain words
first; the tests in tests/unit/app/test_glossary.py check that every term a page or a label uses has one."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Term:
    name: str  # as written on screen
    plain: str  # one or two plain sentences, no formula
    formula: str = ""  # optional LaTeX, shown after the plain words on the Glossary page
    aliases: tuple[str, ...] = ()  # other spellings that count as a use of the term (e.g. "eta" for η)


ENTRIES = (
    Term(
        "t",
        "The timestep: how far along the noising a picture is. t = 0 is the first, lightest step of noise; "
        "t = 999 (T − 1) the last, where almost nothing of the photo is left.",
        aliases=("Timestep", "t_start"),
    ),
    Term(
        "x₀",
        "The clean picture: the photo (or garment) before any noise is added.",
        aliases=("x_0", "x0"),
    ),
    Term(
        "x_t",
        "The noisy picture at timestep t: the clean picture, faded a little, plus Gaussian noise.",
        r"x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon",
        aliases=("xₜ",),
    ),
    Term(
        "β",
        "Beta: how much fresh noise one forward step adds (a small number, from 0.0001 to 0.02 here). The list of "
        "all β_t is the noise schedule.",
        r"q(x_t \mid x_{t-1}) = \mathcal{N}(\sqrt{1-\beta_t}\,x_{t-1},\ \beta_t I)",
        aliases=("beta", "β_t"),
    ),
    Term(
        "ᾱ",
        "Alpha-bar: the share of the clean picture's signal (in power) still left in x_t. Close to 1 at small t, "
        "close to 0 at t = 999.",
        r"\bar\alpha_t = \prod_{s \le t} (1 - \beta_s)",
        aliases=("alpha_bar", "ᾱ_t"),
    ),
    Term(
        "Schedule",
        "The noise schedule: the list of β_t (and so ᾱ_t) for every t. 'linear' raises β evenly; 'cosine' keeps "
        "more of the picture for longer.",
    ),
    Term(
        "SNR",
        "Signal-to-noise ratio: how strong the picture is compared with the noise in x_t. Above 1 the picture "
        "dominates; below 1 the noise does.",
        r"\mathrm{SNR}_t = \bar\alpha_t / (1 - \bar\alpha_t)",
        aliases=("signal-to-noise",),
    ),
    Term(
        "ε",
        "Epsilon: the random Gaussian noise that was mixed into the picture (mean 0, spread 1 per pixel).",
        r"\epsilon \sim \mathcal{N}(0, I)",
        aliases=("epsilon", "noise"),
    ),
    Term(
        "ε̂",
        "Epsilon-hat: the network's guess of the noise ε in x_t. Training makes this guess as close to ε as it can.",
        r"\hat\epsilon = \epsilon_\theta(x_t, t)",
        aliases=("eps_hat", "predicted noise"),
    ),
    Term(
        "x̂₀",
        "x-zero-hat: the network's guess of the clean picture, x_t with all of the guessed noise ε̂ taken out at "
        "once. Blurry at large t, sharp at small t.",
        r"\hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\hat\epsilon)/\sqrt{\bar\alpha_t}",
        aliases=("x0_hat", "x̂_0"),
    ),
    Term(
        "MSE",
        "Mean squared error: the average of the squared differences, pixel by pixel. 0 means a perfect guess.",
        r"\mathrm{MSE} = \mathrm{mean}\,(\hat\epsilon - \epsilon)^2",
        aliases=("ε-MSE",),
    ),
    Term(
        "PSNR",
        "Peak signal-to-noise ratio, in decibels: how close a guess is to the clean picture. Higher is closer; "
        "+6 dB is about half the error. Around 30 dB looks nearly perfect; below 15 dB is a blur.",
        r"\mathrm{PSNR} = 10 \log_{10} (\mathrm{peak}^2 / \mathrm{MSE})",
    ),
    Term(
        "DDPM",
        "Denoising Diffusion Probabilistic Model (Ho et al. 2020): the sampler that removes a little of the "
        "guessed noise and adds back a little fresh noise at every step. Random: two runs differ.",
    ),
    Term(
        "DDIM",
        "Denoising Diffusion Implicit Model (Song et al. 2021): a sampler that can skip steps (50 instead of 1000) "
        "and, with η = 0, adds no fresh noise, so the same start always gives the same picture.",
    ),
    Term(
        "η",
        "Eta: how much fresh noise DDIM adds back at each step. 0: none (deterministic); 1: as much as DDPM.",
        aliases=("eta",),
    ),
    Term(
        "Steps",
        "How many times the sampler asks the network for a guess on the way from noise to picture. More steps "
        "take longer and usually give a cleaner result.",
    ),
    Term(
        "Seed",
        "The number that starts the random-number generator: the same seed and settings give the same noise, "
        "so the same pictures.",
    ),
    Term(
        "Class y",
        "The label given to a class-conditional network (e.g. 'Sneaker'), so it guesses the noise of a picture "
        "of that class. '∅' means no label.",
        aliases=("class", "label", "y", "Class label y"),
    ),
    Term(
        "guidance",
        "Classifier-free guidance: the network guesses the noise twice, with the class and without it, and the "
        "sampler pushes further in the direction the class adds, by a factor w. Whether that helps depends on the "
        "network: measure it.",
        r"\tilde\epsilon = \hat\epsilon(x_t, y) + w\,(\hat\epsilon(x_t, y) - \hat\epsilon(x_t, \varnothing))",
        aliases=("Guidance scale w", "w"),
    ),
    Term(
        "v-prediction",
        "A network that guesses v, a mix of the noise and the clean picture, instead of the noise ε. The app "
        "turns v into ε̂ and x̂₀, so every page shows the same things.",
        r"v = \sqrt{\bar\alpha_t}\,\epsilon - \sqrt{1-\bar\alpha_t}\,x_0",
        aliases=("v_prediction",),
    ),
    Term(
        "Sampler",
        "The recipe that walks from noise back to a picture, one network guess per step: DDPM or DDIM here.",
    ),
    Term(
        "Resolution",
        "The picture's size in pixels (px) on each side. The network works on this many pixels: larger is "
        "sharper but slower.",
        aliases=("px", "Working resolution"),
    ),
    Term(
        "ResNet block",
        "One of the network's building blocks: a few convolutions whose output is added to its input, with the "
        "timestep t mixed in.",
        aliases=("ResNet", "Block"),
    ),
    Term(
        "Attention",
        "A layer where every spot of the picture looks at every other spot and borrows from the ones that look "
        "relevant. A query is the spot that looks; the map shows where it looks.",
        aliases=("Attention layer", "Query"),
    ),
    Term(
        "Learning rate",
        "How big a change one training step makes to the network's weights.",
    ),
    Term(
        "bound",
        "The variational bound (ELBO): the training objective the simple noise-guessing loss comes from; a sum of "
        "one term per timestep (L₀ … L_T).",
        aliases=("ELBO", "VLB", "L_simple"),
    ),
    Term(
        "x, y",
        "The two coordinates of a point in the plane (the particle lab draws its points there).",
        aliases=("x",),
    ),
    Term(
        "Markov chain",
        "A process where each step depends only on the step before. The forward process is one: x_t is made "
        "from x_{t−1} alone.",
    ),
    # issue 36: the words of the network, the samplers and the charts
    Term(
        "U-Net",
        "The kind of network used here: it shrinks the picture step by step to see the whole of it, then grows it "
        "back to full size, with shortcuts that carry the fine detail across.",
        aliases=("UNet", "UNet2DModel"),
    ),
    Term(
        "GMAC",
        "A billion multiply-adds: a count of the arithmetic one pass of the network needs. More GMAC, slower steps.",
        aliases=("GMACs", "MAC", "MACs"),
    ),
    Term(
        "reparametrisation",
        "Writing a random draw as a fixed recipe applied to plain noise (x_t is the faded picture plus scaled "
        "noise ε), so training can see how the result changes when the network's weights change.",
        r"x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon,\quad \epsilon \sim \mathcal{N}(0, I)",
        aliases=("reparametrization", "reparametrisation trick", "reparameterisation"),
    ),
    Term(
        "f_max",
        "The finest detail of the photo still stronger than the noise at t, in cycles per image. Everything finer is "
        "drowned, and the network has to invent it.",
        aliases=("f max",),
    ),
    Term(
        "judge",
        "A separate small network that looks at a generated picture and says which class it thinks it shows. It "
        "grades the generator by how often it agrees with the class that was asked for.",
        aliases=("judge classifier",),
    ),
    Term(
        "flow matching",
        "Another way to train a generator: the network learns the direction and speed that carries noise in a "
        "straight line to a picture, and sampling follows it.",
        aliases=("FlowMatch", "flow-matching"),
    ),
    Term(
        "SDE",
        "Stochastic differential equation: a path from noise to a picture that adds a little fresh randomness at "
        "every step, so two runs from one start differ (DDPM walks one).",
    ),
    Term(
        "ODE",
        "Ordinary differential equation: a path from noise to a picture with no fresh randomness, so one start "
        "always ends on the same picture (DDIM with η = 0 walks one).",
    ),
    Term(
        "Euler",
        "The simplest way to follow a path: one straight step in the direction the network points, then ask again. "
        "One network pass per step.",
    ),
    Term(
        "Heun",
        "A more careful step than Euler's: a trial step, a second look from where it lands, and a move by the "
        "average of the two directions. Two network passes per step.",
    ),
    Term(
        "DPM-Solver++",
        "A fast sampler that reuses the network's earlier guesses to take bigger, more accurate steps: good "
        "pictures in 10 to 20 steps.",
        aliases=("DPM-Solver", "DPMSolver", "DPMSolver++"),
    ),
    Term(
        "UniPC",
        "A fast sampler that, like DPM-Solver++, uses earlier guesses to predict each step and then correct it: good "
        "pictures in few steps.",
    ),
    Term(
        "GroupNorm",
        "Group normalisation: a layer that evens out the numbers in each group of channels (mean 0, spread 1), so "
        "the next layer gets numbers of a steady size.",
        aliases=("group normalisation",),
    ),
    Term(
        "SiLU",
        "The network's bend between layers: it keeps positive numbers almost as they are and squashes negative ones "
        "towards 0.",
        r"\mathrm{SiLU}(x) = x \cdot \mathrm{sigmoid}(x)",
        aliases=("swish",),
    ),
    Term(
        "embedding",
        "A list of numbers that stands for something the network is told, such as the timestep t or the class, so "
        "that every layer can take it into account.",
        aliases=("time embedding", "label embedding", "embeddings"),
    ),
    Term(
        "spectrum",
        "How much of a picture is broad waves (the coarse shapes) and how much fine ripples (the detail), drawn "
        "from coarse to fine.",
        aliases=("power spectrum", "spectra"),
    ),
    Term(
        "KL",
        "Kullback–Leibler divergence: how different two probability distributions are; 0 when they are the same. "
        "Each term of the bound is one.",
        aliases=("KL divergence", "D_KL"),
    ),
    Term(
        "σ",
        "Sigma: the noise level of a sample. In flow matching it runs from 1 (pure noise) to 0 (the data); the Euler "
        "and Heun samplers measure it as the noise's size next to the picture's, large at the start and 0 at the end.",
        r"\sigma_t = \sqrt{(1-\bar\alpha_t)/\bar\alpha_t}",
        aliases=("sigma",),
    ),
    Term(
        "NFE",
        "Number of function evaluations: how many times a sampler runs the network. The fair way to compare "
        "samplers' cost (Heun runs it twice per step).",
        aliases=("network evaluations", "function evaluations"),
    ),
    Term(
        "prompt",
        "The words you give a text-to-image generator to say what picture you want.",
        aliases=("Prompt", "prompts"),
    ),
    Term(
        "token",
        "One piece of a prompt as the model reads it: here one word, looked up in the list of words it was trained "
        "on. A word not on the list becomes the token [UNK], which tells the model nothing.",
        aliases=("tokens", "tokenizer", "[UNK]"),
    ),
    Term(
        "latent",
        "A small grid of numbers that stands for a picture: the words-to-pictures model works on 8×8×4 numbers "
        "instead of 32×32×3 pixels, and the autoencoder turns them into a picture at the end.",
        aliases=("latents", "latent space"),
    ),
    Term(
        "autoencoder",
        "A pair of networks trained together: the encoder squeezes a picture into a latent, the decoder turns the "
        "latent back into the picture. Latent diffusion adds and removes noise in between.",
        aliases=("VAE", "encoder", "decoder"),
    ),
    Term(
        "cross-attention",
        "How the picture listens to the words: at every position of the latent, the network shares its attention "
        "out among the prompt's tokens and takes in most from those it attends to.",
        r"\mathrm{softmax}\big(Q K^\top / \sqrt{d}\big)\,V,\quad Q \text{ from the picture},\ K, V \text{ from the tokens}",
        aliases=("cross attention", "attention map", "attention maps"),
    ),
    Term(
        "negative prompt",
        "Words to steer away from: guidance pushes the picture away from what the model would draw for them, "
        "instead of away from what it draws for no words at all.",
        aliases=("Negative prompt",),
    ),
    Term(
        "interpolation",
        "Going from one thing to another through mixes of the two: here from one prompt's encoding to another's.",
        aliases=("interpolate", "interpolating"),
    ),
    Term(
        "SDEdit",
        "Editing by noise (Meng et al., ICLR 2022): noise a picture part of the way, to a level t, then let the "
        "model denoise it, with words if it takes them. What survives the noise (layout, colours) is kept; the "
        "details are the model's own.",
        aliases=("photo to an emoji",),
    ),
    Term(
        "strength",
        "In SDEdit, how far the picture is noised before the model denoises it: 0 keeps it as it is, 1 is pure "
        "noise, so the result no longer depends on the picture at all.",
        aliases=("Strength",),
    ),
)
