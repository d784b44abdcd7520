import gc

# The collector's first generation runs every 700 allocations by default, and a command's
# start allocates tens of thousands of objects that all live until it exits (the modules):
# each pass over them is wasted, about 1 ms of every container start in all. A command that
# runs long (pull, logs -f) still collects its cycles, 70 times less often.
gc.set_threshold(50_000)

from pyminidocker.cli.main import command  # noqa: E402

command()
