# Copyright (c) hidiff_mm contributors. All rights reserved.
"""The web demo in a real browser (headless Chromium from the system packages, Selenium):
upload, wait, compare the returned image with ``deblur``'s for the same seed, tiles with
progress, a bad file's message; a screenshot is saved in the test's temporary folder. The
server's API is also tested without a browser."""
import base64
import json
import os.path as osp
import shutil
import threading
import urllib.error
import urllib.request

import cv2
import numpy as np
import pytest

from hidiff_mm.apis import deblur
from hidiff_mm.deployment.web_server import DeblurService, make_server

CHROMIUM, CHROMEDRIVER = '/usr/bin/chromium', '/usr/bin/chromedriver'
TILE, OVERLAP = 48, 16


@pytest.fixture(scope='module')
def server(demo_model):
    service = DeblurService(demo_model, tile=TILE, overlap=OVERLAP)
    httpd = make_server(service, port=0, quiet=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield 'http://%s:%d' % httpd.server_address[:2]
    httpd.shutdown()
    httpd.server_close()


def image_file(path, h, w, seed):
    img = cv2.GaussianBlur((np.random.default_rng(seed).random((h, w, 3)) * 255).astype(
        np.uint8), (5, 5), 1.5)
    cv2.imwrite(str(path), img)
    return str(path)


def post(url, data):
    req = urllib.request.Request(url, data=data, method='POST')
    try:
        with urllib.request.urlopen(req) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_api_without_browser(server, demo_model, tmp_path):
    path = image_file(tmp_path / 'a.png', 30, 40, 0)
    code, reply = post(f'{server}/api/jobs?seed=5&name=a.png', open(path, 'rb').read())
    assert code == 202
    for _ in range(600):
        with urllib.request.urlopen(f'{server}/api/jobs/{reply["id"]}') as resp:
            status = json.loads(resp.read())
        if status['state'] in ('done', 'error'):
            break
        threading.Event().wait(0.05)
    assert status['state'] == 'done' and status['done'] == status['total'] == 1
    with urllib.request.urlopen(f'{server}/api/jobs/{reply["id"]}/result.png') as resp:
        got = cv2.imdecode(np.frombuffer(resp.read(), np.uint8), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(got, deblur(demo_model, path, seed=5))
    code, reply = post(f'{server}/api/jobs?name=notes.txt', b'hello')
    assert code == 400 and reply['error'].startswith('notes.txt: not an image')
    code, reply = post(f'{server}/api/jobs?name=e.png', b'')
    assert code == 400 and reply['error'] == 'e.png: the file is empty'
    code, reply = post(f'{server}/api/jobs?seed=x', b'')
    assert code == 400 and 'seed' in reply['error']
    with pytest.raises(urllib.error.HTTPError, match='404'):
        urllib.request.urlopen(f'{server}/api/jobs/999')


@pytest.fixture
def browser(tmp_path):
    if not (osp.exists(CHROMIUM) and osp.exists(CHROMEDRIVER)):
        pytest.skip('needs the Debian packages chromium and chromium-driver '
                    '(apt-get install chromium chromium-driver; .ci/run installs them)')
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ('--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
                 '--disable-background-networking', '--disable-component-update',
                 '--disable-sync', f'--user-data-dir={tmp_path / "profile"}',
                 '--window-size=1280,1000'):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()
    shutil.rmtree(tmp_path / 'profile', ignore_errors=True)


def wait_state(driver, timeout=120):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def state(d):
        return d.find_element(By.ID, 'status').get_attribute('data-state')

    WebDriverWait(driver, timeout).until(lambda d: state(d) in ('done', 'error'))
    return state(driver)


def shown_image(driver, element_id):
    """The image that the page shows in ``element_id``, as the browser received it."""
    data = driver.execute_async_script(
        'const done = arguments[arguments.length - 1];'
        f'fetch(document.getElementById("{element_id}").src).then(r => r.arrayBuffer())'
        '.then(b => { let s = ""; new Uint8Array(b).forEach(c => s += String.fromCharCode(c));'
        ' done(btoa(s)); });')
    return cv2.imdecode(np.frombuffer(base64.b64decode(data), np.uint8), cv2.IMREAD_UNCHANGED)


def test_page_in_chromium(server, browser, demo_model, tmp_path):
    from selenium.webdriver.common.by import By
    browser.get(server)
    upload = browser.find_element(By.ID, 'file')
    # small: one run of the whole image
    path = image_file(tmp_path / 'small.png', 40, 44, 1)
    upload.send_keys(path)
    assert wait_state(browser) == 'done'
    assert np.array_equal(shown_image(browser, 'result'), deblur(demo_model, path, seed=100))
    assert np.array_equal(shown_image(browser, 'before'), cv2.imread(path))
    # large (for this tile size): tiled, with the tile count shown; another seed
    browser.find_element(By.ID, 'seed').clear()
    browser.find_element(By.ID, 'seed').send_keys('7')
    path = image_file(tmp_path / 'large.png', 72, 100, 2)
    upload.send_keys(path)
    assert wait_state(browser) == 'done'
    status = browser.find_element(By.ID, 'status').text
    assert status.startswith('done in ') and '100x72, seed 7, 6 tiles' in status
    expected = deblur(demo_model, path, seed=7, tile=TILE, overlap=OVERLAP)
    assert np.array_equal(shown_image(browser, 'result'), expected)
    download = browser.find_element(By.ID, 'download')
    assert download.get_attribute('download') == 'large_deblurred.png'
    assert download.get_attribute('href').endswith('/result.png')
    assert browser.find_element(By.ID, 'cmp-top').size['width'] > 0
    browser.save_screenshot(str(tmp_path / 'web_demo.png'))
    # a file that is not an image: one line on the page, no result
    bad = tmp_path / 'notes.png'
    bad.write_bytes(b'these are notes, not pixels')
    upload.send_keys(str(bad))
    assert wait_state(browser) == 'error'
    assert browser.find_element(By.ID, 'error').text.startswith('notes.png: not an image')
    assert not browser.find_element(By.ID, 'results').is_displayed()
    browser.save_screenshot(str(tmp_path / 'web_demo_error.png'))
    assert osp.getsize(tmp_path / 'web_demo.png') > 10000


def test_tool_serves_the_page_and_checks_its_options():
    import re
    import subprocess
    import sys

    tool = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'tools',
                    'web_demo.py')
    proc = subprocess.Popen([sys.executable, tool, '--port', '0'], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        line = ''
        while 'http://' not in line:  # after MMEngine's log lines
            line = proc.stdout.readline()
            assert line, 'the tool exited before serving'
        url = re.search(r'http://[\d.]+:\d+', line).group(0)
        assert 'hidiff_demo_shake.py on cpu' in line
        with urllib.request.urlopen(url) as resp:
            assert b'HI-Diff deblurring' in resp.read()
    finally:
        proc.terminate()
        proc.wait(30)
    bad = subprocess.run([sys.executable, tool, '--tile', '12'], capture_output=True, text=True)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1].startswith(
        'web_demo.py: error: tile must be a positive multiple of 8')
