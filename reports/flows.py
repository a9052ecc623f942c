"""Which hops belong to one sign-in: flow groups, so the timeline and JSON can tag them (F1, F2, …)."""
from __future__ import annotations

from authtrace.store.records import Hop, Role


def flow_groups(hops: list[Hop]) -> dict[int, int]:
    """hop number -> flow number (1, 2, … in order of first appearance) for the hops of one sign-in:
    union-find over shared state, code fingerprint and nonce (an id_token's `nonce` claim counts, and
    so does the fingerprint of an access or ID token carried by several hops), and the provider's
    login pages join the authorize request that led to them. Hops that share nothing with another
    hop get no number."""
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    owner: dict[tuple[str, str], int] = {}
    joined: set[int] = set()  # hops linked to another by what they carry
    for h in hops:
        key = h.number
        parent.setdefault(key, key)
        links = [(name, v) for name, v in (("state", h.state), ("code", h.code_fp), ("nonce", h.nonce)) if v]
        if h.answer.issued_code:
            links.append(("code", h.answer.issued_code))
        for t in h.tokens:
            if t.nonce:
                links.append(("nonce", t.nonce))
            if t.kind in ("access_token", "id_token"):
                links.append(("token", t.fingerprint))
        links += saml_links(h)
        for link in links:
            other = owner.setdefault(link, key)
            if other != key:
                joined.update((key, other))
                a, b = find(key), find(other)
                if a != b:
                    parent[b] = a
    # the provider's own pages (login, consent, MFA, its error page) belong to the sign-in whose
    # authorize request sent the browser there (an AuthnRequest too): the latest one at that host before them
    # (a page already linked by what it carries joins only when its group has no authorize request of its
    # own: the page that issued a code whose callback's state was altered still belongs to its sign-in)
    latest: dict[str, int] = {}
    with_authorize = {find(h.number) for h in hops if h.role == Role.AUTHORIZE}
    for h in sorted(hops, key=lambda h: h.started):
        if h.role == Role.AUTHORIZE:
            latest[h.host] = h.number
        elif h.role in (Role.LOGIN, Role.ERROR) and h.host in latest and (
                h.number not in joined or find(h.number) not in with_authorize):
            a, b = find(latest[h.host]), find(h.number)
            if a != b:
                parent[b] = a  # the authorize request's root stays the root: `with_authorize` stays true
        elif h.role == Role.CALLBACK:
            latest.clear()  # the sign-in came back: later pages start another one
    roots = {h.number: find(h.number) for h in hops}
    sizes: dict[int, int] = {}
    for r in roots.values():
        sizes[r] = sizes.get(r, 0) + 1
    numbers: dict[int, int] = {}
    out: dict[int, int] = {}
    for h in hops:
        r = roots[h.number]
        if sizes[r] < 2:
            continue
        out[h.number] = numbers.setdefault(r, len(numbers) + 1)
    return out


def saml_links(h: Hop) -> list[tuple[str, str]]:
    """What ties SAML hops of one sign-in together: a request's ID and the InResponseTo that answers it,
    an assertion's ID and the Response's fingerprint (a re-post joins its sign-in)."""
    out: list[tuple[str, str]] = []
    for m in (h.params.saml, h.answer.saml):
        while m is not None:
            if m.kind in ("AuthnRequest", "LogoutRequest", "ArtifactResolve") and m.id:
                out.append(("saml", m.id))
            irt = m.in_response_to or next((c.in_response_to for a in m.assertions for c in a.confirmations
                                            if c.in_response_to), None)
            if irt:
                out.append(("saml", irt))
            out += [("assertion", a.id) for a in m.assertions if a.id]
            m = m.inner
    for src in (h.params.form, h.params.query):
        for k, v in src.items():
            if k.lower() in ("samlresponse", "samlart") and "#" in v:
                out.append(("saml-blob", v))
    return out
