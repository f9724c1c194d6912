# GPU image for cloud runs: docker build -t advaug . && docker run --gpus all advaug aug=invfgsm trainer=gpu
FROM pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime

WORKDIR /workspace/advaug
ENV PYTHONUNBUFFERED=1 WANDB_MODE=offline
COPY pyproject.toml README.md ./
COPY src ./src
COPY conf ./conf
# torch is already in the base image; the range in pyproject.toml accepts it
RUN pip install --no-cache-dir -e . && mkdir -p logs data
ENTRYPOINT ["python", "src/train.py"]
