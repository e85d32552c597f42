"""``lean nets`` and ``lean data``: what can be built and trained on."""

import click

from . import _common as common


@click.command()
@common.json_option("the nets, their parameter counts and recipes")
def nets(as_json):
    """Networks that can be built, with parameter counts (10 classes, default input) and training recipes."""
    from ..nets import catalog

    common.finish(catalog(), as_json, print_nets)


def print_nets(rows):
    click.echo(f"{'net':<14} {'parameters':>12}  {'input':<12} recipe (lean train's defaults)")
    for r in rows:
        rec = r["recipe"]
        augment = {None: "dataset's", True: "on", False: "off"}[rec["augment"]]
        click.echo(f"{r['name']:<14} {r['parameters']:>12,}  {'x'.join(map(str, r['input_shape'])):<12} "
                   f"lr {rec['lr']:g}, {rec['optimizer']} {rec['schedule']}, wd {rec['weight_decay']:g}, "
                   f"batch {rec['batch_size']}, {rec['epochs']} epochs, augment {augment}")
    click.echo("also: resnet<6n+2>, preresnet<6n+2 or 9n+2> for other depths")
    by_source = {}
    for r in rows:
        by_source.setdefault(r["recipe_source"], []).append(r["name"])
    for source, names in sorted(by_source.items(), key=lambda item: len(item[1])):
        who = ", ".join(names) if len(names) < 4 else "the others"
        click.echo(f"recipe of {who}: {source}")


@click.command()
@common.json_option("the datasets")
def data(as_json):
    """Datasets and whether each is available without a download."""
    from ..data import catalog

    common.finish(catalog(), as_json, print_data)


def print_data(rows):
    for r in rows:
        augment = "; augmented in training (crop + flip)" if r["augment"] else ""
        click.echo(f"{r['name']:<14} {'available' if r['available'] else 'download ':<10} {r['description']}{augment}")
    click.echo("also: a .npz or .h5 file with x_train, y_train, x_test, y_test")


COMMANDS = (nets, data)
