"""JWT signatures against the keys a capture holds: the verdicts a reader relies on."""
import hashlib
import json

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from authtrace.addons.context import Signatures
from authtrace.addons.decode import decode_jwt

from builders import KEY, jwks, make_jwt


def check(sigs: Signatures, token: str, fp: str) -> str:
    header, _ = decode_jwt(token)
    return sigs.check(token, header, fp)


def test_graph_token_with_header_nonce_is_unknown_not_failed():
    # Entra's tokens for Microsoft Graph carry a nonce in the header that is hashed before signing:
    # no client can verify them. Its x5t is a thumbprint; nothing in it says "graph".
    sigs = Signatures()
    sigs.learn_jwks(jwks())
    header = {"kid": "test-kid-1", "typ": "JWT", "x5t": "nOo3ZDrODXEK1jKWhXslHR"}
    signed = jwt.encode({"aud": "https://graph.microsoft.com"}, KEY, algorithm="RS256",
                        headers=dict(header, nonce=hashlib.sha256(b"abc").hexdigest()))
    _, payload, signature = signed.split(".")
    sent = jwt.utils.base64url_encode(json.dumps(dict(header, alg="RS256", nonce="abc")).encode()).decode()
    graph = ".".join([sent, payload, signature])  # as the API receives it: the plain nonce, the hashed one signed
    assert check(sigs, graph, "g1") == "unknown"


def test_key_of_another_type_or_unknown_algorithm_is_unknown():
    sigs = Signatures()
    ec_key = ec.generate_private_key(ec.SECP256R1())
    pub = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ec_key.public_key()))
    sigs.learn_jwks({"keys": [dict(pub, kid="test-kid-1")]})
    rs = make_jwt({"aud": "x"})  # RS256, kid test-kid-1: the capture's key with that kid is an EC key
    assert check(sigs, rs, "t1") == "unknown"
    odd = rs.split(".")
    header = jwt.utils.base64url_encode(json.dumps({"alg": "XS999", "kid": "test-kid-1"}).encode()).decode()
    assert check(sigs, ".".join([header, odd[1], odd[2]]), "t2") == "unknown"


def test_tampered_token_fails():
    sigs = Signatures()
    sigs.learn_jwks(jwks())
    h, p, s = make_jwt({"aud": "x"}).split(".")
    evil = ".".join([h, jwt.utils.base64url_encode(b'{"aud":"y"}').decode(), s])
    assert check(sigs, evil, "e1") == "failed"


def test_token_without_kid_gets_the_same_verdict_whatever_the_order():
    no_kid = jwt.encode({"aud": "x"}, KEY, algorithm="RS256")
    only_key = {"keys": [{k: v for k, v in jwks()["keys"][0].items() if k != "kid"}]}
    before = Signatures()
    before.learn_jwks(only_key)
    after = Signatures()
    first = check(after, no_kid, "n1")
    after.learn_jwks(only_key)
    assert first == "unknown"  # nothing to check against yet
    assert check(before, no_kid, "n1") == "verified"
    assert after.take_updates() == {"n1": "verified"}


def test_unsigned_token_is_none():
    sigs = Signatures()
    sigs.learn_jwks(jwks())
    tok = jwt.encode({"aud": "x"}, None, algorithm="none")
    assert check(sigs, tok, "u1") == "none"
