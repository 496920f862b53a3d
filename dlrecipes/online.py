"""Whether a download can start: the host it would use, asked the way the download would ask.

TFDS (through `requests`) and Keras (through `urllib`) download through the proxy the standard
environment variables name (`HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`, or their lower-case forms).
`reachable(url)` sends a HEAD request for the file itself through `urllib.request`, which reads
those same variables, so a machine behind a proxy is not taken for an offline one, and the host
asked is the one the file comes from (TFDS datasets live on their authors' servers, Keras
weights on storage.googleapis.com).

Example:

>>> if not reachable("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"):
...     raise DatasetError("cifar10 is not downloaded yet and its host cannot be reached ...")
"""

from __future__ import annotations

import http.client
import ssl
import urllib.error
import urllib.request

TIMEOUT = 5.0  # seconds; offline, a download would instead retry for minutes


def reachable(url: str, timeout: float = TIMEOUT) -> bool:
    """True when the server of `url` answers a HEAD request, directly or through the proxy.

    Any HTTP answer counts, an error status too (some servers refuse HEAD): the host is there
    and the download will say what is wrong. So does a TLS failure after connecting (a proxy
    that inspects TLS, a clock far off): that is not being offline either. No answer in
    `timeout` seconds, no route, an unknown host or a proxy that refuses the tunnel is False.
    """
    request = urllib.request.Request(url, method="HEAD")
    try:
        # A new opener reads the proxy variables now, not when the process first opened a URL.
        urllib.request.build_opener().open(request, timeout=timeout).close()
    except urllib.error.HTTPError:
        return True
    except urllib.error.URLError as err:
        return isinstance(err.reason, ssl.SSLError)
    except (OSError, http.client.HTTPException):  # a timeout or reset while reading the answer
        return False
    return True
