"""The training methods a ``TrainConfig`` asks for, as the model change and trainer hooks that run them.

``lean train`` and a resumed run both go through ``prepare``, so a checkpoint's settings rebuild the same run.
"""


def prepare(config, model, *, fresh=False):
    """Returns ``(model, hooks)``: the model to train (skip-gated for SLU) and the hooks of the other methods.

    ``fresh``: a new run (not a resume), whose batch-norm scales start at ``config.bn_init`` when it is given.
    """
    from .e2train import PredictiveSignGradient, add_skip_gates

    hooks = []
    if fresh and config.bn_init is not None:
        from ..compress.slimming import set_batchnorm_scales

        set_batchnorm_scales(model, config.bn_init)
    if config.slu is not None and not _has_gates(model):
        model = add_skip_gates(model, target=config.slu, beta=config.slu_beta, seed=config.seed)
    if config.psg is not None or config.psg_adaptive is not None:
        hooks.append(PredictiveSignGradient(tau=config.psg, tau_rel=config.psg_adaptive))
    if config.early_bird is not None:
        from ..compress.slimming import EarlyBirdTraining

        hooks.append(EarlyBirdTraining(config.early_bird, config.slim, config.eb_window, config.eb_epsilon,
                                       config.eb_precision))
    elif config.slim is not None:  # plain network slimming: train with the penalty, then `lean prune`
        from ..compress.slimming import SlimmingPenalty

        hooks.append(SlimmingPenalty(model, config.slim))
    return model, hooks


def _has_gates(model):
    from ..nn import GateController

    return any(isinstance(m, GateController) for m in model.net.modules())

