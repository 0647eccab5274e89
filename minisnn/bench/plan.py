"""What `minisnn bench` times: the seed point, the sweep around it, and how many iterations each
point gets; the architectures it can build."""
from . import csnn, mlp

AXES = ("batch", "hidden", "steps")   # the settings a point can have, in this order
SEED_CONFIG = {"batch": 128, "hidden": 1000, "steps": 25}
SWEEP = {"batch": [32, 64, 128, 256, 512, 1024],
         "hidden": [100, 300, 1000, 3000, 10000],
         "steps": [10, 25, 50, 100]}
BETAS = (0.9, 0.999)             # Adam's, for every framework (the learning rate is the arch's)
EVAL_BATCH = 128                 # test-set batch of the --train runs (minisnn train's default)

#: The networks the benchmark can build, by --arch name. Each is a module with TITLE, AXES (the
#: settings of AXES it has), INPUT_SHAPE, LOSS, LR, describe(config), minisnn_net(config,
#: backend, seed), snntorch_net(config, seed, hoist) and snntorch_loss(config) (see mlp.py):
#: adding an architecture is adding such a module here.
ARCHITECTURES = {"mlp": mlp, "csnn": csnn}


def architecture(name):
    if name not in ARCHITECTURES:
        raise ValueError(f"arch must be one of {sorted(ARCHITECTURES)}, got {name!r}")
    return ARCHITECTURES[name]


def config_key(row):
    """The point's settings as a tuple, in AXES order: (batch, hidden, steps) for the mlp,
    (batch, steps) for an architecture without a hidden size."""
    return tuple(row[a] for a in AXES if a in row)


def repeats_for(config, repeats, warmup, seed=SEED_CONFIG):
    """Fewer timed and warm-up iterations for configurations that cost more than the seed's
    (cost ~ the product of the settings, batch·hidden·steps), so that the sweep stays
    affordable on a small CPU."""
    cost = 1.0
    for a in AXES:
        if a in seed:
            cost *= config[a] / seed[a]
    if cost <= 1:
        return repeats, warmup
    return max(min(3, repeats), round(repeats / cost)), min(warmup, 1 if cost >= 4 else warmup)


def plan_configs(seed, sweep, quick):
    """The seed configuration first, then each sweep axis varied alone from it (no repeats)."""
    configs = [dict(seed, axes=["seed"])]
    if not quick:
        for axis, values in sweep.items():
            for v in values:
                c = dict(seed, **{axis: v})
                same = next((d for d in configs if all(d[k] == c[k] for k in seed)), None)
                if same is None:
                    configs.append(dict(c, axes=[axis]))
                else:
                    same["axes"].append(axis)
    return configs
