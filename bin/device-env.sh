# Sourced at the start of a command on the lent GPU machine (this workplace's `device` tool), which
# runs the image's own python3 with jax 0.11.2: installs the carried wheels it lacks (.whl:
# ml-collections, trimesh, tensorboardX, binvox) and exposes the carried real data (.carry/data) as
# ../shared/data, where the tests and configs look for it. Call `run` with carry=[".whl", ".carry"].
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl 2>&1 | grep -v WARNING
export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
mkdir -p ../shared
[ -e ../shared/data ] || ln -s "$PWD/.carry/data" ../shared/data
python3 -c "import jax, ml_collections, trimesh; print('device-env:', jax.__version__, jax.devices())"
