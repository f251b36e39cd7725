/*
 * convlens report: progressive enhancement for heatmaps. Without this script every explanation
 * shows its precomputed overlay. With it, the input image and the heatmap are stacked over each
 * overlay, and the page's slider sets the heatmap opacity (one value for the page, kept
 * in sessionStorage so it follows the reader from sample to sample).
 * Classic script (no modules): it also runs when the report is opened from disk.
 */
(function () {
  'use strict';
  var KEY = 'convlens.heatOpacity';

  function stored() {
    try {
      var v = Number(window.sessionStorage.getItem(KEY));
      return Number.isFinite(v) && v >= 0 && v <= 100 && window.sessionStorage.getItem(KEY) !== null ? v : 50;
    } catch (e) {
      return 50;
    }
  }

  function setOpacity(percent) {
    document.documentElement.style.setProperty('--heat-opacity', String(percent / 100));
    var outputs = document.querySelectorAll('[data-heat-opacity-value]');
    for (var i = 0; i < outputs.length; i++) outputs[i].textContent = percent + ' %';
    try {
      window.sessionStorage.setItem(KEY, String(percent));
    } catch (e) {
      /* storage may be unavailable (file://, privacy settings): the slider still works */
    }
  }

  function layer(cls, src, like) {
    var img = document.createElement('img');
    img.className = cls + (like.classList.contains('pixelated') ? ' pixelated' : '');
    img.alt = '';
    img.width = like.width;
    img.height = like.height;
    img.decoding = 'async';
    img.src = src;
    return img;
  }

  /*
   * The precomputed overlay stays where it is (with its alt text, which describes the composite
   * as well); the input image and the heatmap are laid over it, so nothing already loading is
   * cancelled and the overlay shows until they have loaded.
   */
  function enhance(stack) {
    var img = stack.querySelector('img.stack-img');
    var base = stack.getAttribute('data-base');
    var heatSrc = stack.getAttribute('data-heat');
    if (!img || !base || !heatSrc || stack.classList.contains('stacked')) return;
    img.parentNode.appendChild(layer('stack-base', base, img));
    img.parentNode.appendChild(layer('stack-heat', heatSrc, img));
    var link = stack.querySelector('a.stack-link');
    if (link) link.href = heatSrc;
    stack.classList.add('stacked');
  }

  function init() {
    var stacks = document.querySelectorAll('.stack[data-heat][data-base]');
    if (stacks.length === 0) return;
    for (var i = 0; i < stacks.length; i++) enhance(stacks[i]);
    var start = stored();
    setOpacity(start);
    var controls = document.querySelectorAll('[data-heat-controls]');
    for (var j = 0; j < controls.length; j++) {
      var input = controls[j].querySelector('input[data-heat-opacity]');
      if (!input) continue;
      input.value = String(start);
      input.addEventListener('input', function (ev) {
        var v = Number(ev.target.value);
        var all = document.querySelectorAll('input[data-heat-opacity]');
        for (var k = 0; k < all.length; k++) if (all[k] !== ev.target) all[k].value = String(v);
        setOpacity(v);
      });
      controls[j].hidden = false;
    }
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
