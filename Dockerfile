# clusterm from this repository. Used by docker-compose.yml.
FROM python:3.11-slim

# ssh for Ansible's connections to the nodes.
RUN apt-get update \
    && apt-get install -y --no-install-recommends openssh-client \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/clusterm
COPY . .
RUN pip install --no-cache-dir '.[postgres]'

# A non-editable install does not carry the playbooks: point at the repository's.
ENV CLUSTERM_PLAYBOOK_DIR=/opt/clusterm/ansible \
    CLUSTERM_DATA_DIR=/var/lib/clusterm \
    CLUSTERM_HOST=0.0.0.0 \
    CLUSTERM_PORT=9007
# A new volume takes this directory's mode: private from the first start (clusterm also makes
# its data dir 0700 and the files in it 0600 at every start, whatever the volume held before).
# /var/lib/clusterm-shared: where replicas find the first admin token (docker-compose.yml, ha).
RUN mkdir -p -m 0700 /var/lib/clusterm /var/lib/clusterm-shared
VOLUME /var/lib/clusterm
EXPOSE 9007
CMD ["clusterm", "serve"]
