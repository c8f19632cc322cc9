"""Prints the current TOTP code of a base32 seed, as an authenticator app would (pyotp).

Usage: totp_code.py SEED [OFFSET_STEPS]
"""

import sys
import time

import pyotp

seed = sys.argv[1]
offset = int(sys.argv[2]) if len(sys.argv) > 2 else 0
print(pyotp.TOTP(seed).at(time.time() + 30 * offset))
