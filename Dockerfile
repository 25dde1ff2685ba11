# One image for every aifinops service; the compose file picks the service with the command.
FROM python:3.11-slim

WORKDIR /app
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
COPY aifinops ./aifinops
COPY examples ./examples
COPY deploy ./deploy
RUN pip install --no-cache-dir .

USER nobody
ENV AIFINOPS_LOG_FORMAT=json
CMD ["python", "-m", "services.ingest"]
