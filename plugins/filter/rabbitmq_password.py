"""rabbitmq_password_hash: the hash RabbitMQ stores for a password (rabbit_password_hashing_sha256).

base64(salt + sha256(salt + password)) with a 4-byte salt. The salt is derived
from the identity and password, so the hash, and the definitions file holding
it, only change when the password does: reruns report no change.
"""

import base64
import hashlib


def rabbitmq_password_hash(password, name):
    salt = hashlib.sha256(f"{name}:{password}".encode()).digest()[:4]
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


class FilterModule:
    def filters(self):
        return {"rabbitmq_password_hash": rabbitmq_password_hash}
