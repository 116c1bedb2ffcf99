"""The main journey of an operator's script, through a client generated from the committed
OpenAPI document by openapi-python-client: add an app, list the devices (every page), create a
deployment (with an idempotency key), read its status until it is installed, and print what it
saw as one JSON object. Arguments: the CO's base URL, the app's folder, the host to pin to.
tests/tests/generated_client.rs generates the client and runs this script.
"""

import json
import os
import sys
import time

from eos_client import AuthenticatedClient
from eos_client.api.apps import add_app
from eos_client.api.deployments import create_deployment, get_deployment
from eos_client.api.devices import list_devices
from eos_client.models import AddApp, CreateDeployment


def main() -> None:
    base, app_folder, host = sys.argv[1:4]
    client = AuthenticatedClient(
        base_url=base, token=os.environ["EOS_TOKEN"], raise_on_unexpected_status=True
    )

    added = add_app.sync_detailed(client=client, body=AddApp(source=app_folder))
    assert added.status_code in (201, 409), added.content
    app = added.parsed

    devices, cursor = [], None
    while True:
        page = list_devices.sync_detailed(client=client, limit=1, cursor=cursor)
        assert page.status_code == 200, page.content
        devices.extend(d.id for d in page.parsed)
        cursor = page.headers.get("x-next-cursor")
        if not cursor:
            break

    created = create_deployment.sync_detailed(
        client=client,
        body=CreateDeployment(app_id=app.app_id, site=host.split("/")[0], host=host.split("/")[1]),
        idempotency_key="journey-1",
    )
    assert created.status_code == 201, created.content
    deployment = created.parsed

    deadline = time.time() + 60
    while True:
        view = get_deployment.sync(client=client, deployment_id=deployment.id)
        if view.state == "installed" or time.time() > deadline:
            break
        time.sleep(0.2)

    print(
        json.dumps(
            {
                "app": app.app_id,
                "version": app.version,
                "devices": devices,
                "deployment": deployment.id,
                "state": view.state,
                "on": [d.device_id for d in view.devices],
            }
        )
    )


if __name__ == "__main__":
    main()
