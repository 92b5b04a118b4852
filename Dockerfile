# The Oudertelefoon app (web service and, later, the worker). Python 3.11.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    OUDERTELEFOON_VAR_DIR=/var/lib/oudertelefoon

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY handoff ./handoff
COPY stats ./stats
RUN pip install --no-cache-dir .
COPY data ./data
ENV OUDERTELEFOON_DATA_DIR=/app/data

RUN useradd --system --uid 10001 oudertelefoon \
    && mkdir -p /var/lib/oudertelefoon \
    && chown oudertelefoon /var/lib/oudertelefoon
USER oudertelefoon

# Train the embedded model into the image's cache so the first start is fast.
RUN OUDERTELEFOON_VAR_DIR=/var/lib/oudertelefoon oudertelefoon nlu train

EXPOSE 8000
CMD ["oudertelefoon", "serve", "--host", "0.0.0.0", "--port", "8000"]
