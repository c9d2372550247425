// Added to the page by page.js (a nonced script): runs under 'strict-dynamic' without a nonce.
document.getElementById('loaded').textContent = 'The script page.js added ran.';
document.getElementById('loaded').dataset.ran = 'yes';
