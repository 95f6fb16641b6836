"""End-to-end harness for oam-authz: a test PKI, hand-made JWTs, a real Envoy
subprocess with the filter, a loopback echo upstream and a raw HTTP/1.1 client."""
