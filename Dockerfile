# GPU image for cloud runs (docs/scale.md):
#   docker build -t advaug .
#   docker run --gpus all -v "$PWD/logs:/workspace/advaug/logs" -v "$PWD/data:/workspace/advaug/data" \
#     advaug trainer=gpu aug=invfgsm
# Official PyTorch CUDA runtime image; its torch satisfies the range in pyproject.toml (a test checks).
FROM pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime

WORKDIR /workspace/advaug
ENV PYTHONUNBUFFERED=1
COPY pyproject.toml README.md ./
COPY src ./src
COPY conf ./conf
# The project itself, as the README installs it: the dependency list lives in pyproject.toml only.
RUN pip install --no-cache-dir -e . && mkdir -p logs data
# run outputs and datasets live outside the container
VOLUME ["/workspace/advaug/logs", "/workspace/advaug/data"]
# W&B stays offline (conf/logger/wandb.yaml) unless run with -e WANDB_OFFLINE=false -e WANDB_API_KEY
ENTRYPOINT ["python", "src/train.py"]
