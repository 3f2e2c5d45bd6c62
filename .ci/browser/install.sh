#!/usr/bin/env bash
# Install headless Chromium and its WebDriver from the Debian archive (the user-study browser test,
# tests/test_userstudy_browser.py, drives them with Selenium; no browser is downloaded).
# Idempotent: does nothing when both are already there. Needs root and the Debian mirror.
set -euo pipefail

if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    echo "browser-ci: chromium and chromedriver already installed ($(chromedriver --version))"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "browser-ci: need root to apt-get install chromium chromium-driver" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends chromium chromium-driver
echo "browser-ci: installed $(chromedriver --version)"
