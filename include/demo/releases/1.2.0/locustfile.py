"""Load profile for the inventory service (the gate passes --host)."""

import random

from locust import HttpUser, between, task

TERMS = ["widget", "small", "large", "hammer", "kettle", "lamp", "gear", "HWR", "hose", "saw"]


class InventoryUser(HttpUser):
    wait_time = between(0.05, 0.2)

    @task(3)
    def list_items(self):
        self.client.get("/items", params={"limit": 20, "offset": random.choice([0, 20, 40])}, name="/items")

    @task(2)
    def get_item(self):
        self.client.get(f"/items/{random.randint(1, 50)}", name="/items/<id>")

    @task(2)
    def search(self):
        self.client.get("/search", params={"q": random.choice(TERMS)}, name="/search")

    @task(1)
    def health(self):
        self.client.get("/healthz", name="/healthz")
